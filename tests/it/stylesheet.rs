//! The stylesheet keeps to its design tokens: every custom property it uses
//! is defined (a misspelt or invented token silently falls back to nothing,
//! which is how the cookie banner once lost its dark-mode colours), and in a
//! real browser the cookie banner's text stands out from its background in
//! light and in dark mode (WCAG 2.2 success criterion 1.4.3: 4.5:1).

use std::collections::BTreeSet;

use fantoccini::Locator;
use regex::Regex;

fn stylesheet() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/static/css/lyceum.css")).unwrap()
}

/// The custom properties a stylesheet uses through `var()` but never defines.
fn undefined_tokens(css: &str) -> BTreeSet<String> {
    let defined: BTreeSet<&str> =
        Regex::new(r"(--[\w-]+)\s*:").unwrap().captures_iter(css).map(|c| c.get(1).unwrap().as_str()).collect();
    Regex::new(r"var\(\s*(--[\w-]+)")
        .unwrap()
        .captures_iter(css)
        .map(|c| c.get(1).unwrap().as_str())
        .filter(|used| !defined.contains(used))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_token_the_stylesheet_uses_is_defined() {
    let css = stylesheet();
    assert!(css.contains("var(--color-text)"), "the stylesheet uses its tokens");
    assert_eq!(undefined_tokens(&css), BTreeSet::new());
    // The check itself: a use without a definition is reported, a fallback does not hide it.
    assert_eq!(
        undefined_tokens(":root { --a: red; }\n.x { color: var(--a); border-color: var(--border, #ddd); }"),
        BTreeSet::from(["--border".to_string()])
    );
}

/// Declarations that write a colour by value (`#rrggbb`, `rgb()`, `hsl()`)
/// outside the design tokens: the `:root` blocks (light and dark) and the
/// print styles (black on white paper whatever the screen's scheme).
fn colours_outside_tokens(css: &str) -> Vec<String> {
    let css = Regex::new(r"(?s)/\*.*?\*/").unwrap().replace_all(css, "");
    let colour = Regex::new(r":[^;{}]*(#[0-9a-fA-F]{3,8}\b|\b(rgba?|hsla?)\()").unwrap();
    let mut found = Vec::new();
    // The brace depth, and the depth at which an exempt block opened.
    let (mut depth, mut exempt) = (0usize, None);
    for line in css.lines() {
        if exempt.is_none() && (line.contains(":root") || line.contains("@media print")) {
            exempt = Some(depth);
        }
        if exempt.is_none() && colour.is_match(line) {
            found.push(line.trim().to_string());
        }
        for c in line.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if exempt == Some(depth) {
                        exempt = None;
                    }
                }
                _ => {}
            }
        }
    }
    found
}

#[test]
fn colours_are_written_only_as_design_tokens() {
    let css = stylesheet();
    assert_eq!(colours_outside_tokens(&css), Vec::<String>::new(), "use a --color-* token (define one if needed)");
    // The check itself: tokens and print are exempt, a colour in a rule is not, an id selector is no colour.
    let sample = ":root {\n  --a: #fff;\n}\n@media (prefers-color-scheme: dark) {\n  :root { --a: rgb(0 0 0); }\n}\n\
                  #add { color: var(--a); }\n.x { color: #ffffff; }\n.y {\n  background: rgba(0, 0, 0, 0.5);\n}\n\
                  @media print {\n  body { color: #000; }\n}\n/* #abc in a comment */";
    assert_eq!(colours_outside_tokens(sample), vec![".x { color: #ffffff; }", "background: rgba(0, 0, 0, 0.5);"]);
}

/// Relative luminance of an sRGB colour (WCAG 2.2 definition).
fn luminance([r, g, b]: [f64; 3]) -> f64 {
    let linear = |c: f64| {
        let c = c / 255.0;
        if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
}

fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// `rgb(r, g, b)` or `rgba(r, g, b, a)` as the browser computes it.
fn rgb(computed: &str) -> [f64; 3] {
    let numbers: Vec<f64> =
        Regex::new(r"[\d.]+").unwrap().find_iter(computed).map(|m| m.as_str().parse().unwrap()).collect();
    assert!(numbers.len() >= 3, "a colour: {computed}");
    [numbers[0], numbers[1], numbers[2]]
}

/// The computed text colour of each element matching `css` and the first
/// opaque background behind it, as (colour, background) pairs.
const COLOURS: &str = r#"
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const c = getComputedStyle(el).backgroundColor;
            if (c !== 'transparent' && !/rgba\(.*,\s*0\)$/.test(c)) return c;
        }
        return getComputedStyle(document.documentElement).backgroundColor;
    };
    return [...document.querySelectorAll(arguments[0])]
        .map((el) => [getComputedStyle(el).color, background(el)]);
"#;

#[rocket::async_test]
async fn the_cookie_banner_text_has_a_contrast_of_at_least_4_5_in_light_and_dark_mode_in_a_browser() {
    let Some(browser) = crate::browser::start_browser().await else { return };
    let (dark, _profile) = browser.session_with(&["--force-dark-mode"]).await;
    for (b, mode) in [(&browser.b, "light"), (&dark, "dark")] {
        b.goto(&format!("{}/", browser.site)).await.unwrap();
        b.find(Locator::Css("section#cookie-banner p")).await.expect("the banner shows to a new visitor");
        let is_dark = b.execute("return matchMedia('(prefers-color-scheme: dark)').matches;", vec![]).await.unwrap();
        assert_eq!(is_dark, serde_json::json!(mode == "dark"), "the browser prefers the {mode} scheme");
        let pairs = b.execute(COLOURS, vec![serde_json::json!("#cookie-banner p, #cookie-banner p a")]).await.unwrap();
        let pairs: Vec<(String, String)> = serde_json::from_value(pairs).unwrap();
        assert_eq!(pairs.len(), 2, "the text and its link: {pairs:?}");
        for (text, background) in pairs {
            let ratio = contrast(rgb(&text), rgb(&background));
            assert!(ratio >= 4.5, "{mode} mode: {text} on {background} is {ratio:.1}:1");
        }
    }
    dark.close().await.unwrap();
}
