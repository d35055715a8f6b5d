//! Pages and feeds in the coding the client accepts: gzip and brotli variants made once per
//! content change, each with its own ETag and 304, `Vary: Accept-Encoding`, identity when
//! codings are refused; other responses still compressed by the server's layer.

use std::io::Read;

use reqwest::header::{self, HeaderMap};

use crate::common::{TestApp, post, spawn_app};

/// Documents from the cache, each over a kilobyte.
const PATHS: [&str; 6] = [
    "/feed.atom",
    "/feed.rss",
    "/feed.json",
    "/",
    "/posts/otters/",
    "/tags/wildlife/",
];

/// A client that leaves decoding to the test, so what was sent stays visible.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Status, headers and body exactly as sent.
async fn fetch(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Vec<u8>) {
    let mut request = raw_client().request(method, app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Vec<u8>) {
    fetch(app, reqwest::Method::GET, path, headers).await
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// The body decoded by independent decoders, per its Content-Encoding.
fn decode(headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match text(headers, header::CONTENT_ENCODING) {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096).read_to_end(&mut out).unwrap();
        }
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

fn assert_varies(headers: &HeaderMap, what: &str) {
    let vary: Vec<&str> = headers
        .get_all(header::VARY)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(vary, ["accept-encoding"], "{what}: one Vary: Accept-Encoding");
}

async fn site_with_a_long_post() -> TestApp {
    let app = spawn_app().await;
    app.write_post(
        "otters.md",
        &post(
            "Otters return",
            "2026-09-14",
            &["wildlife"],
            &"Otters were seen on the river again this spring. ".repeat(60),
        ),
    );
    app.sync().await;
    app
}

/// Every variant of `path`: (Accept-Encoding sent, Content-Encoding expected, ETag, decoded).
async fn variants(app: &TestApp, path: &str) -> Vec<(&'static str, Option<&'static str>, String, Vec<u8>)> {
    let mut out = Vec::new();
    for (accept, encoding) in [("identity", None), ("gzip", Some("gzip")), ("br", Some("br"))] {
        let (status, headers, body) = get(app, path, &[("accept-encoding", accept)]).await;
        assert_eq!(status, 200, "{path} {accept}");
        assert_eq!(text(&headers, header::CONTENT_ENCODING), encoding, "{path} {accept}");
        assert_eq!(
            text(&headers, header::CONTENT_LENGTH),
            Some(body.len().to_string().as_str()),
            "{path} {accept}: a known length, not streamed"
        );
        assert_varies(&headers, &format!("{path} {accept}"));
        let etag = text(&headers, header::ETAG).unwrap().to_owned();
        out.push((accept, encoding, etag, decode(&headers, &body)));
    }
    out
}

#[tokio::test]
async fn gzip_and_brotli_bodies_decode_to_the_identity_bytes_under_their_own_etags() {
    let app = site_with_a_long_post().await;
    for path in PATHS {
        let all = variants(&app, path).await;
        let (_, _, identity_etag, identity) = &all[0];
        assert!(identity.len() > 1024, "{path} is worth compressing");
        let tag = identity_etag.trim_matches('"');
        for (accept, _, etag, decoded) in &all[1..] {
            assert!(
                decoded == identity,
                "{path}: the {accept} body decodes to the identity bytes"
            );
            let suffix = if *accept == "gzip" { "gz" } else { "br" };
            assert_eq!(etag, &format!("\"{tag}-{suffix}\""), "{path}: a strong ETag of its own");
        }
        if path.contains("feed.") {
            crate::feed_check::parse_feed(path, &all[2].3);
        }
        // Both accepted equally: brotli, the smaller.
        let (_, headers, _) = get(&app, path, &[("accept-encoding", "gzip, deflate, br, zstd")]).await;
        assert_eq!(text(&headers, header::CONTENT_ENCODING), Some("br"), "{path}");
        let (_, headers, _) = get(&app, path, &[("accept-encoding", "br;q=0.5, gzip")]).await;
        assert_eq!(text(&headers, header::CONTENT_ENCODING), Some("gzip"), "{path}: q wins");
    }
}

#[tokio::test]
async fn each_variant_gets_304_for_its_own_etag() {
    let app = site_with_a_long_post().await;
    for path in PATHS {
        for (accept, encoding, etag, _) in variants(&app, path).await {
            let (status, headers, body) =
                get(&app, path, &[("accept-encoding", accept), ("if-none-match", &etag)]).await;
            assert_eq!(status, 304, "{path} {accept}");
            assert!(body.is_empty());
            assert_eq!(text(&headers, header::ETAG), Some(etag.as_str()), "{path} {accept}");
            assert_eq!(text(&headers, header::CONTENT_ENCODING), encoding, "{path} {accept}");
            assert_varies(&headers, &format!("{path} {accept} 304"));
            // Weak comparison, as If-None-Match requires.
            let weak = format!("W/{etag}");
            let (status, _, _) = get(&app, path, &[("accept-encoding", accept), ("if-none-match", &weak)]).await;
            assert_eq!(status, 304, "{path} {accept} weak");
        }
        let all = variants(&app, path).await;
        let gzip_etag = &all[1].2;
        // A browser that now also accepts brotli but holds the gzip copy: that copy is current.
        let (status, headers, _) = get(
            &app,
            path,
            &[("accept-encoding", "gzip, br"), ("if-none-match", gzip_etag)],
        )
        .await;
        assert_eq!(status, 304, "{path}");
        assert_eq!(text(&headers, header::CONTENT_ENCODING), Some("gzip"));
        assert_eq!(text(&headers, header::ETAG), Some(gzip_etag.as_str()));
        // It holds gzip but no longer accepts it: the identity body, not a 304.
        let (status, headers, body) = get(
            &app,
            path,
            &[("accept-encoding", "identity"), ("if-none-match", gzip_etag)],
        )
        .await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(text(&headers, header::CONTENT_ENCODING), None);
        assert!(body == all[0].3);
        // A stale ETag of another document: the body.
        let (status, _, _) = get(
            &app,
            path,
            &[("accept-encoding", "gzip"), ("if-none-match", "\"0123-gz\"")],
        )
        .await;
        assert_eq!(status, 200, "{path}");
    }
}

#[tokio::test]
async fn refused_codings_get_the_identity_body() {
    let app = site_with_a_long_post().await;
    for path in PATHS {
        let (_, _, identity_etag, identity) = variants(&app, path).await.remove(0);
        for accept in [
            Some("gzip;q=0, br;q=0"),
            Some("identity"),
            Some(""),
            Some("deflate, zstd"),
            Some("*;q=0, identity"),
            None,
        ] {
            let headers: Vec<(&str, &str)> = accept.map(|a| ("accept-encoding", a)).into_iter().collect();
            let (status, headers, body) = get(&app, path, &headers).await;
            assert_eq!(status, 200, "{path} {accept:?}");
            assert_eq!(text(&headers, header::CONTENT_ENCODING), None, "{path} {accept:?}");
            assert_eq!(text(&headers, header::ETAG), Some(identity_etag.as_str()));
            assert_varies(&headers, &format!("{path} {accept:?}"));
            assert!(body == identity, "{path} {accept:?}");
        }
    }
}

#[tokio::test]
async fn an_edit_gives_new_bytes_and_new_etags_in_every_coding() {
    let app = site_with_a_long_post().await;
    let before = variants(&app, "/feed.atom").await;
    let post_before = variants(&app, "/posts/otters/").await;
    app.write_post(
        "otters.md",
        &post(
            "Otters return again",
            "2026-09-14",
            &["wildlife"],
            &"Otters were seen on the river again this summer. ".repeat(60),
        ),
    );
    app.sync().await;
    for (path, before) in [("/feed.atom", before), ("/posts/otters/", post_before)] {
        let after = variants(&app, path).await;
        let identity = &after[0].3;
        assert!(
            String::from_utf8_lossy(identity).contains("Otters return again"),
            "{path}"
        );
        for ((accept, _, old_etag, old_body), (_, _, new_etag, new_body)) in before.iter().zip(&after) {
            assert_ne!(old_etag, new_etag, "{path} {accept}: a new ETag");
            assert!(old_body != new_body, "{path} {accept}: new bytes");
            assert!(
                new_body == identity,
                "{path} {accept}: decodes to the new identity bytes"
            );
            let (status, _, _) = get(&app, path, &[("accept-encoding", accept), ("if-none-match", old_etag)]).await;
            assert_eq!(status, 200, "{path} {accept}: the old ETag is stale");
        }
    }
}

#[tokio::test]
async fn head_carries_the_headers_get_would() {
    let app = site_with_a_long_post().await;
    let compared = [
        header::ETAG,
        header::LAST_MODIFIED,
        header::CACHE_CONTROL,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::CONTENT_LENGTH,
        header::VARY,
    ];
    for path in ["/feed.atom", "/posts/otters/"] {
        for accept in ["identity", "gzip", "br", "gzip, br"] {
            // HEAD first, on a fresh variant: it must not need a GET before it.
            let (head_status, head, body) =
                fetch(&app, reqwest::Method::HEAD, path, &[("accept-encoding", accept)]).await;
            assert!(body.is_empty());
            let (get_status, got, body) = get(&app, path, &[("accept-encoding", accept)]).await;
            assert_eq!((head_status, get_status), (200, 200), "{path} {accept}");
            assert_eq!(
                text(&head, header::CONTENT_LENGTH),
                Some(body.len().to_string().as_str()),
                "{path} {accept}"
            );
            for name in &compared {
                assert_eq!(head.get(name), got.get(name), "{path} {accept}: {name}");
            }
            // And a conditional HEAD gets the 304 a GET would.
            let etag = text(&got, header::ETAG).unwrap();
            let conditional = [("accept-encoding", accept), ("if-none-match", etag)];
            let (head_status, head, _) = fetch(&app, reqwest::Method::HEAD, path, &conditional).await;
            let (get_status, got, _) = get(&app, path, &conditional).await;
            assert_eq!((head_status, get_status), (304, 304), "{path} {accept}");
            for name in &compared {
                assert_eq!(head.get(name), got.get(name), "{path} {accept} 304: {name}");
            }
        }
    }
}

#[tokio::test]
async fn other_responses_are_still_compressed_by_the_server_and_cached_ones_only_once() {
    let app = site_with_a_long_post().await;
    let root = app.dir.path().join("static");
    std::fs::create_dir_all(&root).unwrap();
    let css = "body { color: #333; margin: 0 auto; }\n".repeat(50);
    std::fs::write(root.join("site.css"), &css).unwrap();
    // The console's login page, a static file, a 404 page.
    for (path, status) in [("/admin/login", 200), ("/site.css", 200), ("/no/such/page", 404)] {
        let (got, headers, body) = get(&app, path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(got, status, "{path}");
        assert_eq!(text(&headers, header::CONTENT_ENCODING), Some("gzip"), "{path}");
        let decoded = decode(&headers, &body);
        let (_, _, plain) = get(&app, path, &[("accept-encoding", "identity")]).await;
        assert!(decoded == plain, "{path}");
    }
    // A document too small to gain from compression goes out as it is: the layer does not
    // compress it behind the cache's back either.
    let (status, headers, body) = get(&app, "/sitemap.xml", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(status, 200);
    assert!(body.len() < 1024, "the sitemap of one post is small: {}", body.len());
    assert_eq!(text(&headers, header::CONTENT_ENCODING), None);
    assert!(headers.get(header::VARY).is_none(), "it does not vary");
    roxmltree::Document::parse(std::str::from_utf8(&body).unwrap()).unwrap();
    // Weighed by the cache, not the layer: identity preferred means identity.
    let (_, headers, _) = get(&app, "/feed.atom", &[("accept-encoding", "identity;q=1, gzip;q=0.5")]).await;
    assert_eq!(text(&headers, header::CONTENT_ENCODING), None);
}
