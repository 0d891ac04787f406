//! `gridwalk photo ...`: adding photos to visits and requests, listing and removing them,
//! exporting a request with its photos, and collecting photo files nothing needs.
//!
//! The core's photo errors carry their own stable codes (`photo_unsupported_format`, ...); they
//! are handed to `main` as a [`Failure`] with that code, or as the core error they wrap, so
//! `--json` reports the same code the app translates.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use gridwalk_core::photo::{Attachment, IngestOptions, PhotoError, Role};
use serde_json::json;

use crate::table::{clip, Table};
use crate::visits::parse_gps;
use crate::{Env, Failure};

#[derive(Debug, Subcommand)]
pub enum PhotoCommand {
    /// Add photos (JPEG, PNG or WebP) to a visit or request. Every file is checked and shrunk
    /// first; if one cannot be used, none is added.
    Add(AddArgs),
    /// List the photos of a visit or request, removed ones included.
    List {
        /// The visit or request id.
        id: String,
    },
    /// Remove a photo from a visit or request. It stays in the record's history.
    Remove {
        /// The visit or request id.
        id: String,
        /// The photo id (its SHA-256, as `photo list` shows it).
        hash: String,
        /// Remove only its "before" or "after" entry.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
    },
    /// Write a request, its history and its photos into a new folder.
    Export {
        /// The request id.
        id: String,
        /// The folder to write (created; must be new or empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Delete photo files no record needs any more, once the service hall has them.
    Gc,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The visit or request id.
    pub id: String,
    /// The photo files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// before (the problem as found, 整改前) or after (the fix, 整改后).
    #[arg(long, value_parser = parse_role, default_value = "before")]
    pub role: Role,
    #[arg(long)]
    pub caption: Option<String>,
    /// Where the photos were taken, as LAT,LON; kept in the record, never in the files.
    #[arg(long)]
    pub gps: Option<String>,
    /// The longer side of the stored photo, in pixels.
    #[arg(long, default_value_t = 1600)]
    pub max_side: u32,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("'{text}' is not a photo role; use before or after"))
}

/// A photo error as `main` reports it: the core's error when it wraps one, else a failure with
/// the photo error's own code.
fn reported(err: PhotoError) -> anyhow::Error {
    match err {
        PhotoError::Core(core) => (*core).into(),
        other => Failure { code: other.code(), message: other.to_string() }.into(),
    }
}

pub fn run(env: &Env, command: PhotoCommand) -> Result<()> {
    match command {
        PhotoCommand::Add(args) => add(env, args),
        PhotoCommand::List { id } => list(env, &id),
        PhotoCommand::Remove { id, hash, role } => remove(env, &id, &hash, role),
        PhotoCommand::Export { id, out } => export(env, &id, out),
        PhotoCommand::Gc => gc(env),
    }
}

fn add(env: &Env, args: AddArgs) -> Result<()> {
    let gps = args.gps.as_deref().map(parse_gps).transpose()?;
    let options = IngestOptions {
        max_long_side: args.max_side,
        thumb_long_side: IngestOptions::default().thumb_long_side.min(args.max_side),
        ..IngestOptions::default()
    };
    let store = env.open()?;
    // Every file is read and shrunk before anything is stored, so a bad file among several
    // leaves the record as it was; the error names the file.
    let mut ingested = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let bytes = std::fs::read(file)
            .map_err(|e| Failure { code: "io", message: format!("cannot read {}: {e}", file.display()) })?;
        let photo = gridwalk_core::photo::ingest(&bytes, &options)
            .map_err(|e| reported(e.into()).context(format!("{}", file.display())))?;
        ingested.push((file, photo));
    }
    let attachment = Attachment { role: args.role, caption: args.caption, gps };
    let ctx = env.context(&store);
    let mut added = Vec::new();
    for (file, photo) in &ingested {
        let entry = store.add_photo(&ctx, &args.id, photo, &attachment).map_err(reported)?;
        added.push(json!({
            "file": file.display().to_string(),
            "hash": entry.hash,
            "role": entry.role,
            "width": photo.full.width,
            "height": photo.full.height,
            "bytes": photo.full.bytes.len(),
            "source_bytes": std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
        }));
    }
    env.emit(&json!({ "id": args.id, "added": added }), || {
        ingested
            .iter()
            .map(|(file, photo)| {
                format!(
                    "{}  {} × {}  {} KB  {} ({}) -> {}",
                    &photo.full.hash[..12],
                    photo.full.width,
                    photo.full.height,
                    photo.full.bytes.len().div_ceil(1024),
                    attachment.role.as_str(),
                    file.display(),
                    args.id
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn list(env: &Env, id: &str) -> Result<()> {
    let store = env.open()?;
    let photos = store.photos_of(id).map_err(reported)?;
    let rows: Vec<_> = photos
        .iter()
        .map(|p| {
            let stored = store.stored_photo(&p.hash).ok().flatten();
            json!({
                "hash": p.hash,
                "role": p.role,
                "caption": p.caption,
                "added_at": p.added_at,
                "added_by": p.added_by,
                "gps": p.gps,
                "removed": p.removed,
                "removed_at": p.removed_at,
                "removed_by": p.removed_by,
                "on_this_device": stored.is_some(),
                "width": stored.as_ref().map(|s| s.width),
                "height": stored.as_ref().map(|s| s.height),
                "path": stored.and_then(|_| store.photo_path(&p.hash).ok()).map(|p| p.display().to_string()),
            })
        })
        .collect();
    env.emit(&json!({ "id": id, "photos": rows }), || {
        if photos.is_empty() {
            return format!("{id} has no photos");
        }
        let mut table = Table::new(&["photo", "role", "caption", "added", "by", "state"]);
        for p in &photos {
            let state = if p.removed {
                format!("removed by {}", p.removed_by.clone().unwrap_or_default())
            } else if store.stored_photo(&p.hash).ok().flatten().is_some() {
                "here".to_string()
            } else {
                "not on this device".to_string()
            };
            table.row(vec![
                p.hash[..12].to_string(),
                p.role.as_str().to_string(),
                clip(p.caption.as_deref().unwrap_or(""), 30),
                p.added_at.display(),
                p.added_by.clone(),
                state,
            ]);
        }
        table.render()
    })
}

fn remove(env: &Env, id: &str, hash: &str, role: Option<Role>) -> Result<()> {
    let store = env.open()?;
    let ctx = env.context(&store);
    let removed = store.remove_photo(&ctx, id, hash, role).map_err(reported)?;
    env.emit(&json!({ "id": id, "hash": hash, "removed": removed }), || {
        format!("removed {} from {id} (kept in its history)", &hash[..hash.len().min(12)])
    })
}

fn export(env: &Env, id: &str, out: PathBuf) -> Result<()> {
    let store = env.open()?;
    let export = store.export_request_with_photos(&env.context(&store), id, &out).map_err(reported)?;
    env.emit(&export, || {
        let mut text = format!(
            "wrote {} with {} photo(s) to {}",
            id,
            export.photos.iter().filter(|p| p.file.is_some()).count(),
            export.dir.display()
        );
        if !export.missing.is_empty() {
            text.push_str(&format!(
                "\n{} photo(s) are not on this device yet (sync to fetch them): {}",
                export.missing.len(),
                export.missing.join(", ")
            ));
        }
        text
    })
}

fn gc(env: &Env) -> Result<()> {
    let store = env.open()?;
    let report = store.collect_garbage().map_err(reported)?;
    env.emit(&report, || {
        format!(
            "deleted {} photo(s), freed {} KB; kept {} not yet at the service hall; removed {} stray file(s)",
            report.deleted.len(),
            report.bytes_freed.div_ceil(1024),
            report.kept_unacknowledged.len(),
            report.stray_files_removed
        )
    })
}
