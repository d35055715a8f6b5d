//! Markdown to HTML (pulldown-cmark) and plain-text summaries. Uses nothing else in Herald.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, html};

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_SMART_PUNCTUATION
        | Options::ENABLE_STRIKETHROUGH
}

/// CommonMark (with tables, footnotes, strikethrough and smart punctuation) to HTML.
/// The output is not yet safe: pass it through [`super::sanitize_html`].
/// Tables come wrapped (`<div class="table-wrap">`, so a wide one scrolls on its own on a
/// phone) and a column's alignment is a class (`align-right`): the pages' Content-Security-
/// Policy allows no inline styles.
pub fn render_markdown(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, Parser::new_ext(markdown, options()));
    if !out.contains("<table") {
        return out;
    }
    let mut out = out
        .replace("<table>", "<div class=\"table-wrap\"><table>")
        .replace("</table>", "</table></div>");
    for side in ["left", "center", "right"] {
        out = out.replace(
            &format!(" style=\"text-align: {side}\""),
            &format!(" class=\"align-{side}\""),
        );
    }
    out
}

/// Plain text with the body's typography: `--` and `---` as dashes, `...` as an ellipsis,
/// straight quotes curled, and nothing else read as Markdown. For front-matter summaries,
/// so that they read like the body they sum up.
pub fn smart_punctuation(text: &str) -> String {
    let text = text.trim();
    // What would start a list item: a leading `-`, or the `.` after leading digits.
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let mut escaped = String::with_capacity(text.len() + 8);
    for (i, c) in text.char_indices() {
        let starts_list =
            (i == 0 && c == '-' && text[1..].starts_with([' ', '\t'])) || (i == digits && digits > 0 && c == '.');
        if starts_list || (c.is_ascii_punctuation() && !matches!(c, '-' | '.' | '\'' | '"')) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    let mut out = String::with_capacity(text.len());
    for event in Parser::new_ext(&escaped, Options::ENABLE_SMART_PUNCTUATION) {
        match event {
            Event::Text(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            _ => {}
        }
    }
    out
}

/// The text of the first paragraph, cut at a word boundary to at most `max` characters,
/// for posts that give no summary of their own.
pub fn plain_summary(markdown: &str, max: usize) -> Option<String> {
    let mut text = String::new();
    let mut in_paragraph = false;
    for event in Parser::new_ext(markdown, options()) {
        match event {
            Event::Start(Tag::Paragraph) => in_paragraph = true,
            Event::End(TagEnd::Paragraph) if in_paragraph && !text.trim().is_empty() => break,
            Event::End(TagEnd::Paragraph) => in_paragraph = false,
            Event::Text(t) | Event::Code(t) if in_paragraph => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak if in_paragraph => text.push(' '),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    if text.chars().count() <= max {
        return Some(text);
    }
    let cut: String = text.chars().take(max).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > max / 2 => &cut[..i],
        _ => &cut[..],
    };
    Some(format!("{}…", cut.trim_end_matches([',', ';', ':', '.', ' '])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tables_footnotes_and_smart_quotes() {
        let html = render_markdown("\"Hi\" -- there[^1]\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[^1]: A note.\n");
        assert!(html.contains("“Hi” – there"), "{html}");
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("footnote-definition"), "{html}");
    }

    #[test]
    fn summaries_get_the_bodys_punctuation_and_no_markdown() {
        assert_eq!(
            smart_punctuation("Otters -- and \"voles\" --- are back... *not* [a link](x) # 5 < 6"),
            "Otters – and “voles” — are back… *not* [a link](x) # 5 < 6"
        );
        assert_eq!(smart_punctuation("It's 1-2"), "It’s 1-2");
        assert_eq!(smart_punctuation("- a list? 1. no"), "- a list? 1. no");
        assert_eq!(smart_punctuation("12. Not a list"), "12. Not a list");
        assert_eq!(smart_punctuation("-- Otters"), "– Otters");
    }

    #[test]
    fn table_columns_keep_their_alignment_as_classes_and_tables_are_wrapped() {
        let html = render_markdown("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |\n");
        assert!(html.starts_with("<div class=\"table-wrap\"><table>"), "{html}");
        assert!(html.trim_end().ends_with("</table></div>"), "{html}");
        for side in ["left", "center", "right"] {
            assert!(html.contains(&format!("<th class=\"align-{side}\">")), "{html}");
            assert!(html.contains(&format!("<td class=\"align-{side}\">")), "{html}");
        }
        assert!(!html.contains("style="), "{html}");
    }

    #[test]
    fn summary_is_the_first_paragraph_without_markup() {
        let md = "# Heading\n\nFirst *para*\nwith `code`.\n\nSecond.";
        assert_eq!(plain_summary(md, 100).unwrap(), "First para with code.");
    }

    #[test]
    fn long_summaries_are_cut_at_a_word() {
        let md = "one two three four five six seven eight nine ten";
        assert_eq!(plain_summary(md, 20).unwrap(), "one two three four…");
        assert_eq!(plain_summary("", 20), None);
    }
}
