//! Loading a package's bytes — a folder or a zip — into one in-memory tree
//! (package path → bytes), so parsing never touches the file system and the
//! size limits are enforced in one place.

use super::check::{check_path, finish};
use super::{MAX_PACKAGE_BYTES, MAX_PACKAGE_ENTRIES, PackageProblem};
use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::Path;

pub(super) type Tree = BTreeMap<String, Vec<u8>>;

/// Names problems about the package as a whole rather than one file.
pub(super) const WHOLE_PACKAGE: &str = "(package)";

fn whole(message: impl Into<String>) -> PackageProblem {
    PackageProblem { file: WHOLE_PACKAGE.to_string(), line: None, message: message.into() }
}

fn at(file: &str, message: impl Into<String>) -> PackageProblem {
    PackageProblem { file: file.to_string(), line: None, message: message.into() }
}

fn too_large() -> PackageProblem {
    whole(format!("the package is larger than {} MB unpacked", MAX_PACKAGE_BYTES / (1024 * 1024)))
}

fn too_many() -> PackageProblem {
    whole(format!("the package has more than {MAX_PACKAGE_ENTRIES} entries"))
}

/// Hidden files (`.DS_Store`, `.git/`) and macOS zip resource forks are
/// never package content.
fn ignored(path: &str) -> bool {
    path.split('/').any(|part| part.starts_with('.')) || path.starts_with("__MACOSX/")
}

pub(super) fn load_dir(root: &Path) -> Result<Tree, Vec<PackageProblem>> {
    let meta = std::fs::metadata(root).map_err(|e| vec![whole(format!("cannot open {}: {e}", root.display()))])?;
    if !meta.is_dir() {
        return Err(vec![whole(format!("{} is not a directory", root.display()))]);
    }
    let mut tree = Tree::new();
    let mut problems = Vec::new();
    let mut entries = 0usize;
    let mut total = 0u64;
    // (absolute dir, package prefix) pairs still to walk.
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let listing =
            std::fs::read_dir(&dir).map_err(|e| vec![whole(format!("cannot list {}: {e}", dir.display()))])?;
        for entry in listing {
            let entry = entry.map_err(|e| vec![whole(format!("cannot list {}: {e}", dir.display()))])?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                problems.push(at(&prefix, format!("{:?} is not a UTF-8 file name", entry.file_name())));
                continue;
            };
            let path = format!("{prefix}{name}");
            if ignored(&path) {
                continue;
            }
            entries += 1;
            if entries > MAX_PACKAGE_ENTRIES {
                return Err(vec![too_many()]);
            }
            // `DirEntry::file_type` does not follow links: a link could point anywhere on the server.
            let kind = entry.file_type().map_err(|e| vec![at(&path, format!("cannot read: {e}"))])?;
            if kind.is_symlink() {
                problems.push(at(&path, "symbolic links are not allowed in a package"));
            } else if kind.is_dir() {
                pending.push((entry.path(), format!("{path}/")));
            } else if kind.is_file() {
                let file =
                    std::fs::File::open(entry.path()).map_err(|e| vec![at(&path, format!("cannot read: {e}"))])?;
                let mut bytes = Vec::new();
                // Read at most one byte past the budget: the size on disk may change under us.
                let budget = MAX_PACKAGE_BYTES - total;
                file.take(budget + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| vec![at(&path, format!("cannot read: {e}"))])?;
                total += bytes.len() as u64;
                if total > MAX_PACKAGE_BYTES {
                    return Err(vec![too_large()]);
                }
                tree.insert(path, bytes);
            }
        }
    }
    if problems.is_empty() { Ok(tree) } else { Err(finish(problems)) }
}

pub(super) fn load_zip(bytes: &[u8]) -> Result<Tree, Vec<PackageProblem>> {
    // The same bound as the web upload's (`web::upload::PackageLimit`).
    if bytes.len() as u64 > MAX_PACKAGE_BYTES {
        return Err(vec![whole(format!("the zip file is larger than {} MB", MAX_PACKAGE_BYTES / (1024 * 1024)))]);
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| vec![whole(format!("not a readable zip archive: {e}"))])?;
    if archive.len() > MAX_PACKAGE_ENTRIES {
        return Err(vec![too_many()]);
    }
    // The archive's index keeps one entry per name: a second entry of a name
    // would vanish without a word, whichever of the two it kept.
    if archive.has_duplicate_names() {
        return Err(vec![match twice_named(bytes) {
            Some(name) => at(&name, "appears twice in the zip: keep one entry of this name and zip the package again"),
            None => whole("the zip holds two entries of one name: keep one of each and zip the package again"),
        }]);
    }
    let mut tree = Tree::new();
    let mut problems = Vec::new();
    let mut total = 0u64;
    for index in 0..archive.len() {
        let mut entry =
            archive.by_index(index).map_err(|e| vec![whole(format!("zip entry {index} is unreadable: {e}"))])?;
        let name = match entry.name() {
            Ok(name) => name.into_owned(),
            Err(e) => {
                problems.push(whole(format!("zip entry {index} has an unreadable name: {e}")));
                continue;
            }
        };
        if entry.is_dir() {
            continue;
        }
        if let Err(message) = check_path(&name) {
            problems.push(at(&name, format!("path {message}")));
            continue;
        }
        if ignored(&name) {
            continue;
        }
        if entry.is_symlink() {
            problems.push(at(&name, "symbolic links are not allowed in a package"));
            continue;
        }
        if entry.encrypted() {
            problems.push(at(&name, "encrypted zip entries are not supported"));
            continue;
        }
        // The declared size can lie; the real count below is what's enforced.
        if total.saturating_add(entry.size()) > MAX_PACKAGE_BYTES {
            return Err(vec![too_large()]);
        }
        let mut data = Vec::new();
        let budget = MAX_PACKAGE_BYTES - total;
        if let Err(e) = (&mut entry).take(budget + 1).read_to_end(&mut data) {
            problems.push(at(&name, format!("cannot unpack: {e}")));
            continue;
        }
        total += data.len() as u64;
        if total > MAX_PACKAGE_BYTES {
            return Err(vec![too_large()]);
        }
        if tree.insert(name.clone(), data).is_some() {
            problems.push(at(&name, "appears twice in the zip"));
        }
    }
    if !problems.is_empty() {
        return Err(finish(problems));
    }
    Ok(strip_top_folder(tree))
}

/// The first entry name a zip holds twice, read from its entries in order
/// (the archive's own index keeps only one of each name).
fn twice_named(bytes: &[u8]) -> Option<String> {
    let mut reader = Cursor::new(bytes);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..=MAX_PACKAGE_ENTRIES {
        let entry = zip::read::read_zipfile_from_stream(&mut reader).ok()??;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if !seen.insert(name.clone()) {
            return Some(name);
        }
    }
    None
}

/// "Compress folder" zips put everything under `name/`; accept that shape.
fn strip_top_folder(tree: Tree) -> Tree {
    if tree.contains_key("course.toml") {
        return tree;
    }
    let mut top: Option<&str> = None;
    for path in tree.keys() {
        let Some((first, _)) = path.split_once('/') else { return tree };
        match top {
            None => top = Some(first),
            Some(seen) if seen == first => {}
            Some(_) => return tree,
        }
    }
    let Some(top) = top.map(|t| format!("{t}/")) else { return tree };
    tree.into_iter().map(|(path, bytes)| (path[top.len()..].to_string(), bytes)).collect()
}
