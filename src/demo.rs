//! Demo mode: on first start with an empty database, a staff admin and a
//! learner with known passwords, shown on the home page so a new user can look
//! around at once. Never runs when `demo` is off.

use diesel::prelude::*;

use crate::accounts::domain::{Email, PersonName, Username};
use crate::accounts::roles::{self, Role};
use crate::accounts::{passwords, service};
use crate::db::{Conn, schema::users};
use crate::learning::{authoring, package, transfer};
use crate::storage::BlobStore;
use crate::web::page::DemoAccount;
use rust_embed::RustEmbed;

pub fn accounts() -> Vec<DemoAccount> {
    vec![
        DemoAccount {
            role: "Staff".into(),
            email: "staff@demo.lyceum.local".into(),
            password: "lyceum-staff-demo".into(),
        },
        DemoAccount {
            role: "Learner".into(),
            email: "learner@demo.lyceum.local".into(),
            password: "lyceum-learner-demo".into(),
        },
    ]
}

/// Seeds the demo accounts and courses when there are no users; returns whether it did.
pub fn seed_if_empty(conn: &mut Conn, blobs: &dyn BlobStore) -> Result<bool, String> {
    let count: i64 = users::table.count().get_result(conn).map_err(|e| e.to_string())?;
    if count > 0 {
        return Ok(false);
    }
    let people = [("staff", "Grace", "Hopper", true), ("learner", "Ada", "Lovelace", false)];
    for (account, (username, first, last, staff)) in accounts().iter().zip(people) {
        let hash = passwords::hash_blocking(&account.password)?;
        let id = service::insert_operator_account(
            conn,
            &Username::parse(username)?,
            &Email::parse(&account.email)?,
            &PersonName::parse(first, "first name")?,
            &PersonName::parse(last, "last name")?,
            &hash,
        )
        .map_err(|e| e.to_string())?;
        if staff {
            roles::grant(conn, id, Role::Staff, "", None).map_err(|e| e.to_string())?;
            let author = crate::accounts::SessionUser {
                id,
                username: username.into(),
                first_name: first.into(),
                last_name: last.into(),
                email: account.email.clone(),
                email_verified: true,
                roles: vec![(Role::Staff, String::new())],
            };
            seed_courses(conn, blobs, &author)?;
        }
    }
    Ok(true)
}

#[derive(RustEmbed)]
#[folder = "demo/"]
struct DemoFiles;

#[derive(serde::Deserialize)]
struct DemoMembers {
    members: Vec<DemoMember>,
}

#[derive(serde::Deserialize)]
struct DemoMember {
    slug: String,
    name: String,
    description: String,
}

/// The demo members and their courses, from the packages in `demo/`
/// (embedded in the binary), imported through the same path as any package.
fn seed_courses(conn: &mut Conn, blobs: &dyn BlobStore, author: &crate::accounts::SessionUser) -> Result<(), String> {
    let now = crate::db::now();
    let members_toml = DemoFiles::get("members.toml").ok_or("demo/members.toml is missing")?;
    let list: DemoMembers = toml::from_str(&String::from_utf8_lossy(&members_toml.data)).map_err(|e| e.to_string())?;
    for m in &list.members {
        authoring::create_member(conn, author, &m.slug, &m.name, &m.description, now).map_err(|e| e.to_string())?;
    }
    let mut courses: Vec<String> = DemoFiles::iter()
        .filter_map(|p| p.strip_prefix("courses/").and_then(|r| r.strip_suffix("/course.toml")).map(str::to_string))
        .collect();
    courses.sort();
    for slug in courses {
        let prefix = format!("courses/{slug}/");
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let mut member_slug = None;
        for path in DemoFiles::iter().filter(|p| p.starts_with(&prefix)) {
            let file = DemoFiles::get(&path).ok_or("demo file vanished")?;
            let mut bytes = file.data.into_owned();
            let rel = &path[prefix.len()..];
            if rel == "course.toml" {
                // `member = "…"` is a demo-only key naming the member; the package format has none.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let (member_lines, rest): (Vec<&str>, Vec<&str>) =
                    text.lines().partition(|l| l.trim_start().starts_with("member ="));
                member_slug = member_lines.first().and_then(|l| l.split('"').nth(1)).map(str::to_string);
                bytes = (rest.join("\n") + "\n").into_bytes();
            }
            zip.start_file(rel, zip::write::SimpleFileOptions::default()).map_err(|e| e.to_string())?;
            std::io::Write::write_all(&mut zip, &bytes).map_err(|e| e.to_string())?;
        }
        let bytes = zip.finish().map_err(|e| e.to_string())?.into_inner();
        let member_slug = member_slug.ok_or_else(|| format!("demo course {slug} names no member"))?;
        let member = authoring::member_by_slug(conn, &member_slug).map_err(|e| e.to_string())?;
        let pkg = package::read_zip(&bytes).map_err(|p| problems(&slug, &p))?;
        let course = transfer::import(conn, blobs, author, &member, &pkg).map_err(|p| problems(&slug, &p))?;
        authoring::set_published(conn, &course, true, now).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn problems(slug: &str, problems: &[package::PackageProblem]) -> String {
    format!("demo course {slug}: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))
}
