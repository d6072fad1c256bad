//! `toolhost new`: a connector project that builds, tests natively and
//! loads as it is.

use std::path::{Path, PathBuf};

use super::templates::{self, World};
use crate::call::names;

#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("{0}; it is the plugin's name, its tools' prefix and the crate's name")]
    Name(String),
    #[error("{0} already exists and is not empty: choose another name or --dir, or remove it")]
    NotEmpty(String),
    #[error("--sdk {0}: no toolhost-sdk crate there (its Cargo.toml should say name = \"toolhost-sdk\")")]
    NotAnSdk(String),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Where the project's `toolhost-sdk` dependency comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// A local checkout of the SDK crate (its folder).
    Path(PathBuf),
    /// crates.io, the version the templates name.
    CratesIo,
}

impl Sdk {
    /// The SDK this binary was built with, when its source is still where
    /// it was built (a toolhost checkout); else crates.io.
    pub fn default_for_this_binary() -> Sdk {
        match built_from_sdk() {
            Some(path) => Sdk::Path(path),
            None => Sdk::CratesIo,
        }
    }

    /// `--sdk PATH`, checked to be the SDK crate.
    pub fn at(path: &Path) -> Result<Sdk, NewError> {
        let not_sdk = || NewError::NotAnSdk(path.display().to_string());
        let path = std::fs::canonicalize(path).map_err(|_| not_sdk())?;
        if !is_sdk(&path) {
            return Err(not_sdk());
        }
        Ok(Sdk::Path(path))
    }

    fn dependency(&self) -> String {
        match self {
            // TOML basic strings escape backslashes and quotes like JSON.
            Sdk::Path(path) => format!(
                "toolhost-sdk = {{ path = {} }}",
                serde_json::Value::from(path.display().to_string())
            ),
            Sdk::CratesIo => templates::SDK_FROM_CRATES_IO.to_string(),
        }
    }
}

/// The checkout this binary was built in, if it still exists there.
pub fn checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    root.join("plugins/build.sh").is_file().then(|| root.to_path_buf())
}

fn built_from_sdk() -> Option<PathBuf> {
    let sdk = checkout()?.join("sdk");
    is_sdk(&sdk).then_some(sdk)
}

fn is_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains("name = \"toolhost-sdk\""))
}

/// Names cargo refuses for a package, though they are plugin names.
const RESERVED: &[&str] = &["test", "std", "core", "alloc", "proc-macro", "self", "crate", "super"];

fn check_name(name: &str) -> Result<(), NewError> {
    names::check_plugin_name(name).map_err(NewError::Name)?;
    if RESERVED.contains(&name) {
        return Err(NewError::Name(format!("{name:?} is a name cargo reserves")));
    }
    Ok(())
}

/// What a new project is.
pub struct NewProject {
    pub world: World,
    pub name: String,
    /// The folder to create; `./<name>` when not given.
    pub dir: Option<PathBuf>,
    pub sdk: Sdk,
}

/// The project's files, relative to its folder.
pub fn files(world: World, name: &str, sdk: &Sdk) -> Vec<(&'static str, String)> {
    let quoted_sample = format!("\"{}\"", templates::SAMPLE_NAME);
    let quoted = format!("\"{name}\"");
    let key_env = format!("{}_API_KEY", name.to_ascii_uppercase().replace('-', "_"));
    vec![
        (
            "Cargo.toml",
            templates::CARGO_TOML
                .replace(&quoted_sample, &quoted)
                .replace(templates::SDK_FROM_CRATES_IO, &sdk.dependency()),
        ),
        ("connector.toml", world.manifest().replace(&quoted_sample, &quoted)),
        ("src/lib.rs", world.source().to_string()),
        (
            "dev.toml",
            templates::DEV_TOML.replace(templates::SAMPLE_KEY_ENV, &key_env),
        ),
        (".gitignore", templates::GITIGNORE.to_string()),
    ]
}

/// Write the project; its folder.
pub fn create(project: &NewProject) -> Result<PathBuf, NewError> {
    check_name(&project.name)?;
    let dir = project.dir.clone().unwrap_or_else(|| PathBuf::from(&project.name));
    let occupied = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied || dir.is_file() {
        return Err(NewError::NotEmpty(dir.display().to_string()));
    }
    for (file, text) in files(project.world, &project.name, &project.sdk) {
        let path = dir.join(file);
        let write = || {
            std::fs::create_dir_all(path.parent().expect("a file in the project"))?;
            std::fs::write(&path, &text)
        };
        write().map_err(|source| NewError::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::manifest::Manifest;

    #[test]
    fn the_name_goes_everywhere_the_sample_name_was() {
        let sdk = Sdk::Path(PathBuf::from("/src/toolhost/sdk"));
        let files = files(World::Erp, "acme-erp", &sdk);
        let text = |name: &str| &files.iter().find(|(f, _)| *f == name).unwrap().1;
        assert!(text("Cargo.toml").contains("name = \"acme-erp\""));
        assert!(text("Cargo.toml").contains("toolhost-sdk = { path = \"/src/toolhost/sdk\" }"));
        assert!(text("dev.toml").contains("ACME_ERP_API_KEY"));
        let manifest = Manifest::parse(text("connector.toml"), "t").unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.world.as_str()),
            ("acme-erp", "erp-connector")
        );
        for (file, text) in &files {
            assert!(!text.contains(templates::SAMPLE_NAME), "{file} still says my-connector");
        }
        let from_crates_io = super::files(World::Erp, "acme-erp", &Sdk::CratesIo);
        assert!(from_crates_io[0].1.contains("toolhost-sdk = \"0.1\""));
    }

    #[test]
    fn refuses_bad_names_and_occupied_folders() {
        for bad in ["Acme", "1erp", "acme_erp", "test", ""] {
            let project = NewProject {
                world: World::Crm,
                name: bad.into(),
                dir: Some(std::env::temp_dir().join("toolhost-new-never-made")),
                sdk: Sdk::CratesIo,
            };
            assert!(matches!(create(&project), Err(NewError::Name(_))), "{bad:?}");
        }
        let occupied = std::env::temp_dir().join(format!("toolhost-new-occupied-{}", std::process::id()));
        std::fs::create_dir_all(&occupied).unwrap();
        std::fs::write(occupied.join("keep.txt"), "mine").unwrap();
        let project = NewProject {
            world: World::Crm,
            name: "acme".into(),
            dir: Some(occupied.clone()),
            sdk: Sdk::CratesIo,
        };
        let err = create(&project).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        assert_eq!(std::fs::read_to_string(occupied.join("keep.txt")).unwrap(), "mine");
        std::fs::remove_dir_all(&occupied).unwrap();
    }
}
