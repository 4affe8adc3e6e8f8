//! The man pages in man/ are generated from the clap definition; this test fails when they are
//! stale. Regenerate them with: UPDATE_MAN=1 cargo test --test man

use std::path::Path;

use clap::CommandFactory;

fn render(cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out).expect("render man page");
    out
}

#[test]
fn man_pages_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let root = consul_doctor::cli::Cli::command();
    let mut pages = vec![("consul-doctor.1".to_string(), render(root.clone()))];
    for sub in root.get_subcommands() {
        let name = format!("consul-doctor-{}", sub.get_name());
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        let cmd = sub.clone().name(leaked).version(env!("CARGO_PKG_VERSION"));
        pages.push((format!("{name}.1"), render(cmd)));
    }
    let update = std::env::var_os("UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for (file, content) in &pages {
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, content).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            stale.push(file.clone());
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(pages.iter().any(|(f, _)| *f == name), "man/{name} belongs to no command; delete it");
    }
    assert!(stale.is_empty(), "stale man pages {stale:?}: run UPDATE_MAN=1 cargo test --test man");
}
