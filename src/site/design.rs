//! The look an admin sets in `[site]` without editing templates: logo, icon, accent colour,
//! footer line and postal address, worked out once from the settings.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::domain::Colour;

/// The site's design as templates see it (inside `site`).
#[derive(Debug, Clone, Serialize)]
pub struct Design {
    /// Absolute URL of the logo, if there is one.
    pub logo: Option<String>,
    /// Absolute URL of the icon.
    pub favicon: String,
    /// Its media type, for `<link rel="icon" type=…>`.
    pub favicon_type: &'static str,
    /// The accent as used on light backgrounds.
    pub accent: String,
    /// The accent as used in dark mode.
    pub accent_dark: String,
    pub footer: String,
    /// The postal address, one entry per line.
    pub postal_address: Vec<String>,
    /// The CSS that sets the accent for pages; a `<style>` of its own, allowed by hash.
    pub theme_css: String,
    /// The generated icon served at `/favicon.svg`, made once.
    #[serde(skip)]
    pub favicon_svg: String,
}

/// The path of the generated icon.
pub const FAVICON_PATH: &str = "favicon.svg";

/// What a `<style>` block holding only the theme looks like in a template.
pub const THEME_BLOCK: &str = "{{ site.theme_css | safe }}";

impl Design {
    pub fn new(settings: &Settings) -> Self {
        let site = &settings.site;
        let absolute = |value: &str| -> Option<String> {
            let value = value.trim();
            if value.is_empty() {
                return None;
            }
            site.base_url.join(value.trim_start_matches('/')).ok().map(String::from)
        };
        let accent = site.accent_color.for_light();
        let accent_dark = site.accent_color.for_dark();
        let favicon = absolute(&site.favicon);
        let favicon_type = match &favicon {
            None => "image/svg+xml",
            Some(url) => media_type(url),
        };
        Self {
            logo: absolute(&site.logo),
            favicon: favicon.unwrap_or_else(|| settings.url_for(FAVICON_PATH)),
            favicon_type,
            accent: accent.to_string(),
            accent_dark: accent_dark.to_string(),
            footer: site.footer.trim().to_owned(),
            postal_address: site
                .postal_address
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            favicon_svg: Self::favicon_svg(settings),
            theme_css: format!(
                ":root {{ --accent: {accent}; }} @media (prefers-color-scheme: dark) {{ :root {{ --accent: {accent_dark}; }} }}"
            ),
        }
    }

    /// The CSP source expression that allows the theme's `<style>`.
    pub fn theme_hash(&self) -> String {
        format!(
            "'sha256-{}'",
            STANDARD.encode(Sha256::digest(self.theme_css.as_bytes()))
        )
    }

    /// The generated icon: the title's first letter on a rounded square of the accent.
    fn favicon_svg(settings: &Settings) -> String {
        let accent = settings.site.accent_color.for_light();
        let letter = settings
            .site
            .title
            .chars()
            .find(|c| c.is_alphanumeric())
            .map(|c| c.to_uppercase().to_string())
            .unwrap_or_default();
        let ink = if accent.contrast(Colour::rgb(255, 255, 255)) >= accent.contrast(Colour::rgb(0, 0, 0)) {
            "#ffffff"
        } else {
            "#000000"
        };
        let letter = letter.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 64 64\">\
             <rect width=\"64\" height=\"64\" rx=\"12\" fill=\"{accent}\"/>\
             <text x=\"32\" y=\"45\" font-family=\"system-ui, sans-serif\" font-size=\"38\" font-weight=\"700\" \
             text-anchor=\"middle\" fill=\"{ink}\">{letter}</text></svg>\n"
        )
    }
}

fn media_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("gif") => "image/gif",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => "image/png",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_site_and_urls_stay() {
        let mut settings = Settings::default();
        settings.site.base_url = "https://news.example.org/charity/".parse().unwrap();
        settings.site.logo = "images/logo.png".into();
        settings.site.favicon = "https://cdn.example.net/icon.ico".into();
        settings.site.postal_address = "1 High Street\n\n  Leeds LS1 1AA \n".into();
        let design = Design::new(&settings);
        assert_eq!(
            design.logo.as_deref(),
            Some("https://news.example.org/charity/images/logo.png")
        );
        assert_eq!(design.favicon, "https://cdn.example.net/icon.ico");
        assert_eq!(design.favicon_type, "image/x-icon");
        assert_eq!(design.postal_address, ["1 High Street", "Leeds LS1 1AA"]);
    }

    #[test]
    fn without_settings_the_icon_is_generated() {
        let settings = Settings::default();
        let design = Design::new(&settings);
        assert_eq!(design.logo, None);
        assert_eq!(design.favicon, "http://127.0.0.1:8080/favicon.svg");
        let svg = &design.favicon_svg;
        assert!(svg.contains(">H</text>") && svg.contains("#0b6e4f"), "{svg}");
    }

    #[test]
    fn a_pale_accent_is_darkened_for_pages() {
        let mut settings = Settings::default();
        settings.site.accent_color = "#ffdd00".parse().unwrap();
        let design = Design::new(&settings);
        assert_ne!(design.accent, "#ffdd00");
        assert!(design.theme_css.contains(&design.accent));
        assert!(design.theme_hash().starts_with("'sha256-"));
    }
}
