//! Directive lines in unit files: `::: name key="value" …`. Values are
//! double-quoted with `\"` and `\\` as the only escapes, so any value can be
//! written back on one line and read again unchanged.

/// The marker that starts a directive line.
pub(super) const PREFIX: &str = "::: ";

/// The known directives, for "unknown directive" messages.
pub(super) const NAMES: &[&str] = &["video", "quiz", "resource", "live"];

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Directive {
    pub name: String,
    pub attrs: Vec<(String, String)>,
}

impl Directive {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Parses what follows [`PREFIX`] on a directive line.
pub(super) fn parse_directive(rest: &str) -> Result<Directive, String> {
    let rest = rest.trim();
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let name = &rest[..end];
    if name.is_empty() {
        return Err("directive has no name".into());
    }
    let attrs = parse_attrs(&rest[end..])?;
    Ok(Directive { name: name.to_string(), attrs })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Parses `name="value"` pairs separated by whitespace, in order.
pub(super) fn parse_attrs(input: &str) -> Result<Vec<(String, String)>, String> {
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut chars = input.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, first)) = chars.peek() else { return Ok(attrs) };
        if !is_name_char(first) {
            return Err(format!("expected an attribute name at `{}`", excerpt(&input[start..])));
        }
        let mut name = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| is_name_char(*c)) {
            name.push(c);
        }
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(format!("attribute `{name}` needs a value: {name}=\"…\""));
        }
        if chars.next_if(|(_, c)| *c == '"').is_none() {
            return Err(format!("the value of `{name}` must be in double quotes"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(format!("the value of `{name}` has no closing quote")),
                Some((_, '"')) => break,
                Some((_, '\\')) => match chars.next() {
                    Some((_, c @ ('"' | '\\'))) => value.push(c),
                    Some((_, c)) => {
                        return Err(format!("unknown escape `\\{c}` in `{name}` (only \\\" and \\\\ are allowed)"));
                    }
                    None => return Err(format!("the value of `{name}` has no closing quote")),
                },
                Some((_, c)) => value.push(c),
            }
        }
        if chars.peek().is_some_and(|(_, c)| !c.is_whitespace()) {
            return Err(format!("expected a space after the value of `{name}`"));
        }
        if attrs.iter().any(|(n, _)| *n == name) {
            return Err(format!("attribute `{name}` appears twice"));
        }
        attrs.push((name, value));
    }
}

/// A short, single-line piece of the input for error messages.
fn excerpt(s: &str) -> String {
    s.chars().take(20).collect()
}

/// Quotes a value so [`parse_attrs`] reads it back unchanged.
pub(super) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Renders a directive line (without a line end).
pub(super) fn render(name: &str, attrs: &[(&str, &str)]) -> String {
    let mut line = format!("{PREFIX}{name}");
    for (key, value) in attrs {
        line.push(' ');
        line.push_str(key);
        line.push('=');
        line.push_str(&quote(value));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn reads_pairs_in_order() {
        assert_eq!(
            parse_attrs(r#" file="files/a.pdf"   title="Cheat sheet" "#).unwrap(),
            pairs(&[("file", "files/a.pdf"), ("title", "Cheat sheet")])
        );
        assert_eq!(parse_attrs("").unwrap(), vec![]);
        assert_eq!(parse_attrs("a=\"\"").unwrap(), pairs(&[("a", "")]));
        assert_eq!(parse_attrs("x-y_1=\"v\"\tz=\"w\"").unwrap(), pairs(&[("x-y_1", "v"), ("z", "w")]));
    }

    #[test]
    fn unescapes_quotes_and_backslashes() {
        assert_eq!(
            parse_attrs(r#"title="Say \"hi\" \\ bye" b="ünï""#).unwrap(),
            pairs(&[("title", r#"Say "hi" \ bye"#), ("b", "ünï")])
        );
        // Single quotes and `=` inside a value are plain characters.
        assert_eq!(parse_attrs(r#"t="it's a=b""#).unwrap(), pairs(&[("t", "it's a=b")]));
    }

    #[test]
    fn rejects_malformed_attributes() {
        let err = |s: &str| parse_attrs(s).unwrap_err();
        assert_eq!(err(r#"title"#), "attribute `title` needs a value: title=\"…\"");
        assert_eq!(err(r#"title=x"#), "the value of `title` must be in double quotes");
        assert_eq!(err(r#"title='x'"#), "the value of `title` must be in double quotes");
        assert_eq!(err(r#"title="x"#), "the value of `title` has no closing quote");
        assert_eq!(err(r#"title="x\"#), "the value of `title` has no closing quote");
        assert_eq!(err(r#"title="a\nb""#), "unknown escape `\\n` in `title` (only \\\" and \\\\ are allowed)");
        assert_eq!(err(r#"a="1"b="2""#), "expected a space after the value of `a`");
        assert_eq!(err(r#"a="1" a="2""#), "attribute `a` appears twice");
        assert_eq!(err(r#""x""#), "expected an attribute name at `\"x\"`");
        assert_eq!(err(r#"a ="1""#), "attribute `a` needs a value: a=\"…\"");
    }

    #[test]
    fn directive_names_and_attributes() {
        let d = parse_directive(r#"video url="https://youtu.be/x" transcript="files/t.txt""#).unwrap();
        assert_eq!(d.name, "video");
        assert_eq!(d.get("url"), Some("https://youtu.be/x"));
        assert_eq!(d.get("file"), None);
        assert_eq!(parse_directive("   ").unwrap_err(), "directive has no name");
        assert_eq!(parse_directive("quiz").unwrap().attrs, vec![]);
    }

    #[test]
    fn quoting_round_trips() {
        for value in ["plain", "", r#"a "quoted" \ path\"#, "ünïcødé ✓", r#"\\\""#] {
            let line = render("resource", &[("title", value), ("file", "files/x")]);
            let rest = line.strip_prefix(PREFIX).unwrap();
            let d = parse_directive(rest).unwrap();
            assert_eq!(d.get("title"), Some(value), "{line}");
            assert_eq!(d.get("file"), Some("files/x"));
        }
    }
}
