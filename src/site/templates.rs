use std::path::Path;

use anyhow::Context;
use include_dir::{Dir, include_dir};

static BUILT_IN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The tera templates, loaded once: the ones built into the binary, each replaced by a
/// file of the same name under `templates_dir` if one is configured.
pub struct Templates {
    tera: tera::Tera,
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<(String, String)>) -> anyhow::Result<()> {
    for file in dir.files() {
        let name = file.path().to_string_lossy().replace('\\', "/");
        let text = file
            .contents_utf8()
            .with_context(|| format!("Built-in template {name} is not UTF-8"))?;
        out.push((name, text.to_owned()));
    }
    for sub in dir.dirs() {
        collect(sub, out)?;
    }
    Ok(())
}

impl Templates {
    /// Loads and compiles every template; a syntax error names the template.
    pub fn load(override_dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        collect(&BUILT_IN, &mut sources)?;
        if let Some(dir) = override_dir {
            for (name, text) in &mut sources {
                let candidate = dir.join(&*name);
                if candidate.is_file() {
                    *text = std::fs::read_to_string(&candidate)
                        .with_context(|| format!("Failed to read template {}", candidate.display()))?;
                }
            }
        }
        let mut tera = tera::Tera::default();
        tera.set_escape_fn(escape_html);
        tera.add_raw_templates(sources)
            .map_err(|e| anyhow::anyhow!(describe(&e)))
            .context("Failed to compile the templates")?;
        Ok(Self { tera })
    }

    /// Renders a template; errors carry the template's name and the tera chain.
    pub fn render(&self, name: &str, context: &tera::Context) -> anyhow::Result<String> {
        self.tera
            .render(name, context)
            .map_err(|e| anyhow::anyhow!(describe(&e)))
            .with_context(|| format!("Failed to render template {name}"))
    }
}

/// Escapes the five characters that matter in HTML text and quoted attributes.
/// (Tera's default also escapes `/`, which garbles every URL in the page source.)
fn escape_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 8);
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn describe(error: &tera::Error) -> String {
    let mut out = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
