//! What the benchmark programs share: the generated corpus of posts.

/// Topics the generated posts are spread over.
const TAGS: usize = 50;

/// Post number `i`: 8 paragraphs, a heading, a list, links, 3 tags from [`TAGS`], in YAML
/// front matter that Herald and Hugo read alike.
pub fn post_text(i: usize) -> String {
    let tags: Vec<String> = (0..3).map(|k| format!("topic-{}", (i * 7 + k * 13) % TAGS)).collect();
    let day = 1 + i % 28;
    let month = 1 + (i / 28) % 12;
    let body = (0..8)
        .map(|p| format!("Paragraph {p} of post {i}: volunteers met at the *river* to count [fish](/fish/{p}) and clear litter -- a good day's work."))
        .collect::<Vec<_>>()
        .join("\n\n");
    format!(
        "---\ntitle: \"Post number {i}\"\ndate: 2025-{month:02}-{day:02}T{:02}:{:02}:00Z\nauthor: Author {}\ntags: [{}]\n---\n## Heading\n\n{body}\n\n- one\n- two\n",
        i % 24,
        i % 60,
        i % 17,
        tags.join(", ")
    )
}
