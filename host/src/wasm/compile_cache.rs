//! Compiled code cached on disk by component digest and engine fingerprint,
//! so a restart does not recompile. An entry carries a checksum of itself; a
//! corrupted or truncated entry is detected, discarded and rebuilt, never run.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"THCACHE1";

pub struct CompileCache {
    dir: Option<PathBuf>,
    fingerprint: String,
}

/// Whether a component came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Compiled,
    Cache,
}

impl CompileCache {
    /// `dir: None` disables caching.
    pub fn new(engine: &wasmtime::Engine, dir: Option<PathBuf>) -> CompileCache {
        // The engine's compatibility hash changes with wasmtime's version and
        // every setting that affects compiled code.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir,
            fingerprint: format!("{:016x}", hasher.finish()),
        }
    }

    fn entry(&self, digest: &str) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(format!("{digest}-{}.cwasm", self.fingerprint)))
    }

    /// The compiled component, from the cache or freshly compiled (and then
    /// stored for next time). `before_compile` runs only when the cache does
    /// not hold it, before the compiler starts: a check that can refuse the
    /// component cheaply (its error is returned as is, and nothing is
    /// compiled or written).
    pub fn load<E>(
        &self,
        engine: &wasmtime::Engine,
        digest: &str,
        wasm: &[u8],
        before_compile: impl FnOnce() -> Result<(), E>,
    ) -> Result<(Component, Source), LoadFailure<E>> {
        if let Some(component) = self.cached(engine, digest) {
            return Ok((component, Source::Cache));
        }
        before_compile().map_err(LoadFailure::Refused)?;
        // Worth saying: a large component takes the compiler tens of seconds.
        tracing::info!(digest, bytes = wasm.len(), "compiling component");
        let component = Component::new(engine, wasm).map_err(LoadFailure::Compile)?;
        if let Some(path) = self.entry(digest) {
            if let Err(e) = component
                .serialize()
                .map_err(|e| e.to_string())
                .and_then(|code| write_verified(&path, &code).map_err(|e| e.to_string()))
            {
                tracing::warn!(path = %path.display(), "could not write compile cache: {e}");
            }
        }
        Ok((component, Source::Compiled))
    }

    /// The cached compiled code of `digest`, if the cache holds a sound entry.
    fn cached(&self, engine: &wasmtime::Engine, digest: &str) -> Option<Component> {
        let path = self.entry(digest)?;
        match read_verified(&path) {
            Some(code) => {
                // SAFETY: the bytes were produced by `Component::serialize`
                // of this same engine configuration (the fingerprint is in
                // the file name) and their checksum matches, so they are
                // what we wrote.
                match unsafe { Component::deserialize(engine, &code) } {
                    Ok(component) => return Some(component),
                    Err(e) => tracing::warn!(path = %path.display(), "discarding unusable cache entry: {e}"),
                }
            }
            None if path.exists() => tracing::warn!(path = %path.display(), "discarding corrupted cache entry"),
            None => {}
        }
        None
    }
}

/// Why [`CompileCache::load`] gave no component.
#[derive(Debug)]
pub enum LoadFailure<E> {
    /// The check before compiling refused it.
    Refused(E),
    /// The compiler did.
    Compile(wasmtime::Error),
}

fn read_verified(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let body = bytes.strip_prefix(MAGIC.as_slice())?;
    if body.len() < 32 {
        return None;
    }
    let (sum, code) = body.split_at(32);
    (Sha256::digest(code).as_slice() == sum).then(|| code.to_vec())
}

fn write_verified(path: &Path, code: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = Vec::with_capacity(code.len() + 40);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&Sha256::digest(code));
    bytes.extend_from_slice(code);
    // Write aside and rename, so a reader never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)
}
