//! Content codings a document can be sent in (RFC 9110 §8.4.1), which documents are worth
//! compressing, and the encoders. A cached document is compressed once per content change,
//! so the levels favour bytes on the wire over encoding time.

use std::io::Write;

/// A representation of a document: as rendered, or compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    /// The compressed codings Herald offers, most preferred first: brotli's output is the
    /// smaller, so it wins when a client accepts both equally.
    pub const COMPRESSED: [Encoding; 2] = [Encoding::Brotli, Encoding::Gzip];

    /// The content-coding token, as in `Accept-Encoding` and `Content-Encoding`.
    pub const fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }

    /// What the variant's strong ETag adds to the identity one, inside the quotes: each
    /// representation needs its own (RFC 9110 §8.8.3.3).
    pub(super) const fn etag_suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => "-br",
            Encoding::Gzip => "-gz",
            Encoding::Identity => "",
        }
    }
}

/// How much time an encoder may spend on a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// Kept until the content changes and sent many times: the smallest output. Measured on
    /// the 53 KiB Atom feed of the serving benchmark: gzip 9 and brotli 11 (see BENCHMARKS.md).
    Kept,
    /// Made for one response and dropped: the encoders' usual defaults (tower-http's).
    Once,
}

/// Below this, compression saves less than a packet and costs a round of work (nginx's
/// `gzip_min_length` advice; Akamai and Cloudflare use similar floors).
const MIN_LENGTH: usize = 1024;

/// Whether a body of this type and length is worth compressing: text formats only (images
/// and archives are compressed already), and not tiny ones.
pub fn compressible(content_type: &str, length: usize) -> bool {
    if length < MIN_LENGTH {
        return false;
    }
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+xml")
        || essence.ends_with("+json")
        || matches!(
            essence.as_str(),
            "application/xml" | "application/json" | "application/javascript" | "image/svg+xml"
        )
}

/// `body` in the given coding.
pub fn compress(encoding: Encoding, effort: Effort, body: &[u8]) -> std::io::Result<Vec<u8>> {
    match encoding {
        Encoding::Identity => Ok(body.to_vec()),
        Encoding::Gzip => {
            let level = match effort {
                Effort::Kept => flate2::Compression::best(),
                Effort::Once => flate2::Compression::default(),
            };
            let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 3), level);
            encoder.write_all(body)?;
            encoder.finish()
        }
        Encoding::Brotli => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: match effort {
                    Effort::Kept => 11,
                    Effort::Once => 4,
                },
                // The smallest window that holds the whole body (10..=24 bits): less memory
                // for the decoder, the same output.
                lgwin: (usize::BITS - body.len().leading_zeros()).clamp(10, 24) as i32,
                size_hint: body.len(),
                mode: brotli::enc::backward_references::BrotliEncoderMode::BROTLI_MODE_TEXT,
                ..Default::default()
            };
            let mut out = Vec::with_capacity(body.len() / 4);
            brotli::BrotliCompress(&mut &body[..], &mut out, &params)?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn text_formats_over_a_kilobyte_are_compressible() {
        for kind in [
            "text/html; charset=utf-8",
            "application/atom+xml; charset=utf-8",
            "application/rss+xml",
            "application/feed+json",
            "application/xml",
            "image/svg+xml",
        ] {
            assert!(compressible(kind, 1024), "{kind}");
            assert!(!compressible(kind, 1023), "{kind} tiny");
        }
        for kind in ["image/png", "application/zip", "application/octet-stream", ""] {
            assert!(!compressible(kind, 100_000), "{kind}");
        }
    }

    #[test]
    fn both_codings_decode_to_the_input_at_both_efforts() {
        let body = "<entry>Otters are back on the river.</entry>\n".repeat(500);
        for effort in [Effort::Kept, Effort::Once] {
            let gz = compress(Encoding::Gzip, effort, body.as_bytes()).unwrap();
            let mut plain = String::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_string(&mut plain)
                .unwrap();
            assert_eq!(plain, body);
            let br = compress(Encoding::Brotli, effort, body.as_bytes()).unwrap();
            let mut plain = String::new();
            brotli::Decompressor::new(&br[..], 4096)
                .read_to_string(&mut plain)
                .unwrap();
            assert_eq!(plain, body);
            assert!(br.len() < body.len() / 10 && gz.len() < body.len() / 10);
        }
    }
}
