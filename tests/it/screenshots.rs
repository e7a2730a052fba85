//! The screenshots command the README lists (`scripts/screenshots.py`)
//! keeps working: run at a tiny scope against a demo site, it writes each
//! page light and dark at 1280 px and light at 390 px.

use crate::browser::start_browser;

/// The mean brightness (0–255) of an image.
fn brightness(png: &[u8]) -> f64 {
    let image = image::load_from_memory(png).expect("a PNG").to_luma8();
    image.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / f64::from(image.width() * image.height())
}

#[rocket::async_test]
async fn the_screenshots_command_writes_pages_light_dark_and_at_phone_width() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("python3 scripts/screenshots.py"), "the README lists the command");
    // Chromium, chromedriver and a demo site, as the browser tests have them.
    let Some(browser) = start_browser().await else { return };
    let out = tempfile::tempdir().unwrap();
    let (site, dir) = (browser.site.clone(), out.path().to_path_buf());
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/screenshots.py"))
            .args(["--site", &site, "--only", "home,course", "--out"])
            .arg(&dir)
            .output()
            .expect("python3 runs")
    });
    let run = run.await.unwrap();
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "the command succeeds: {said}");
    let mut names: Vec<String> =
        std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "course-dark.png",
            "course-light.png",
            "course-phone.png",
            "home-dark.png",
            "home-light.png",
            "home-phone.png"
        ]
    );
    assert!(said.contains("course: /courses/"), "the course page was reached from the catalog: {said}");
    for page in ["home", "course"] {
        let read = |variant: &str| std::fs::read(out.path().join(format!("{page}-{variant}.png"))).unwrap();
        let (light, dark, phone) = (read("light"), read("dark"), read("phone"));
        let width = |png: &[u8]| image::load_from_memory(png).unwrap().width();
        assert_eq!((width(&light), width(&dark), width(&phone)), (1280, 1280, 390), "{page}: the widths");
        // The whole page, not the first screen of it.
        assert!(image::load_from_memory(&phone).unwrap().height() > 900, "{page}: the phone shot is the whole page");
        let (light, dark) = (brightness(&light), brightness(&dark));
        assert!(dark + 60.0 < light, "{page}: the dark screenshot is dark ({dark:.0} against {light:.0})");
    }
}
