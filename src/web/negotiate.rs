//! Proactive negotiation of content codings (RFC 9110 §12.5.3): which of the representations
//! a document is offered in the client accepts, best first.

use axum::http::HeaderValue;

use crate::site::Encoding;

/// A qvalue in thousandths (RFC 9110 §12.4.2: at most three decimals, 0 to 1).
type Weight = u16;

/// The codings of `offered` (most preferred first, identity last) that the client's
/// `Accept-Encoding` values accept, in the order to choose them: highest q first, then the
/// server's preference. Empty when nothing offered is acceptable (`identity;q=0` or `*;q=0`
/// and no coding we have).
///
/// No header at all: identity only (RFC 9110 allows any coding then, but a client that says
/// nothing may not decode one). A coding not listed takes `*`'s weight; identity not listed
/// and not refused by `*;q=0` is acceptable, after every coding the client named.
pub fn accepted<'a>(
    accept_encoding: impl IntoIterator<Item = &'a HeaderValue>,
    offered: impl IntoIterator<Item = Encoding>,
) -> Vec<Encoding> {
    let mut listed = false;
    // Explicit weights of br, gzip, identity, and of `*`.
    let mut weights: [Option<Weight>; 4] = [None; 4];
    for value in accept_encoding {
        listed = true;
        let Ok(text) = value.to_str() else { continue };
        for element in text.split(',') {
            let mut parts = element.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            let Some(weight) = weight(parts) else { continue };
            let slot = match coding.to_ascii_lowercase().as_str() {
                "br" => 0,
                // RFC 9110 §8.4.1.3: x-gzip is gzip.
                "gzip" | "x-gzip" => 1,
                "identity" => 2,
                "*" => 3,
                _ => continue,
            };
            // Listed twice: the higher weight counts.
            weights[slot] = Some(weights[slot].map_or(weight, |w| w.max(weight)));
        }
    }
    if !listed {
        return offered.into_iter().filter(|&e| e == Encoding::Identity).collect();
    }
    let star = weights[3];
    let mut ranked: Vec<(Weight, usize, Encoding)> = offered
        .into_iter()
        .enumerate()
        .filter_map(|(preference, encoding)| {
            let explicit = match encoding {
                Encoding::Brotli => weights[0],
                Encoding::Gzip => weights[1],
                Encoding::Identity => weights[2],
            };
            let weight = match (explicit, star, encoding) {
                (Some(w), _, _) | (None, Some(w), _) => w,
                // Acceptable by default, but after any coding the client asked for by name.
                (None, None, Encoding::Identity) => 0,
                (None, None, _) => return None,
            };
            let acceptable = weight > 0 || (encoding == Encoding::Identity && explicit.is_none() && star.is_none());
            acceptable.then_some((weight, preference, encoding))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, _, encoding)| encoding).collect()
}

/// The weight from an element's parameters: `q=` if present (1 if not), or None when it is
/// malformed (the element is then ignored rather than guessed at).
fn weight<'a>(parameters: impl Iterator<Item = &'a str>) -> Option<Weight> {
    for parameter in parameters {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            return parse_qvalue(value.trim());
        }
    }
    Some(1000)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
fn parse_qvalue(text: &str) -> Option<Weight> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: Weight = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::{Brotli, Gzip, Identity};

    const ALL: [Encoding; 3] = [Brotli, Gzip, Identity];

    fn of(header: Option<&str>) -> Vec<Encoding> {
        let values: Vec<HeaderValue> = header.map(|h| HeaderValue::from_str(h).unwrap()).into_iter().collect();
        accepted(&values, ALL)
    }

    #[test]
    fn the_clients_weights_then_brotli_over_gzip() {
        let table: &[(Option<&str>, &[Encoding])] = &[
            (None, &[Identity]),
            (Some(""), &[Identity]),
            (Some("gzip"), &[Gzip, Identity]),
            (Some("x-gzip"), &[Gzip, Identity]),
            (Some("GZIP"), &[Gzip, Identity]),
            (Some("gzip, deflate, br, zstd"), &[Brotli, Gzip, Identity]),
            (Some("br;q=1.0, gzip;q=0.8, *;q=0.1"), &[Brotli, Gzip, Identity]),
            (Some("gzip;q=1, br;q=0.5"), &[Gzip, Brotli, Identity]),
            (Some("gzip;q=0, br;q=0"), &[Identity]),
            (Some("identity"), &[Identity]),
            (Some("br;q=0.001"), &[Brotli, Identity]),
            // The client ranks identity over the codings.
            (Some("identity;q=1, gzip;q=0.5"), &[Identity, Gzip]),
            // Equal weights: compressed first.
            (Some("identity, gzip"), &[Gzip, Identity]),
            (Some("*"), &[Brotli, Gzip, Identity]),
            (Some("*;q=0"), &[]),
            (Some("*;q=0, gzip"), &[Gzip]),
            (Some("identity;q=0"), &[]),
            (Some("identity;q=0, gzip"), &[Gzip]),
            (Some("*;q=0, identity"), &[Identity]),
            (Some("gzip;q=0, *"), &[Brotli, Identity]),
            // Whitespace and parameter case.
            (Some(" gzip ; Q=0.5 ,br;q=0.25"), &[Gzip, Brotli, Identity]),
            // Malformed weights are ignored, not guessed.
            (Some("gzip;q=2, br;q=0.5555, deflate"), &[Identity]),
            (Some("gzip;q=1.5"), &[Identity]),
            (Some("gzip;q=1.000"), &[Gzip, Identity]),
            (Some("gzip;q=abc, br"), &[Brotli, Identity]),
            // Listed twice: the higher weight.
            (Some("gzip;q=0, gzip;q=0.3"), &[Gzip, Identity]),
        ];
        for (header, expected) in table {
            assert_eq!(&of(*header), expected, "Accept-Encoding: {header:?}");
        }
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let values = [HeaderValue::from_static("gzip;q=0.5"), HeaderValue::from_static("br")];
        assert_eq!(accepted(&values, ALL), [Brotli, Gzip, Identity]);
    }

    #[test]
    fn only_what_is_offered() {
        let values = [HeaderValue::from_static("br, gzip")];
        assert_eq!(accepted(&values, [Identity]), [Identity]);
        let values = [HeaderValue::from_static("br, identity;q=0")];
        assert_eq!(accepted(&values, [Identity]), Vec::<Encoding>::new());
    }

    #[test]
    fn qvalues_parse_to_thousandths() {
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.125"), Some(125));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1."), Some(1000));
        assert_eq!(parse_qvalue("1.001"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue("-0"), None);
        assert_eq!(parse_qvalue(""), None);
    }
}
