//! Drafts: the state of a form the user has not submitted yet, saved on every change so that a
//! phone that dies or an app the system kills loses nothing typed. Drafts are local to the
//! device and never sync; the form's submission is the user action that matters.

use rusqlite::{params, OptionalExtension};

use super::Store;
use crate::error::{CoreError, Result};
use crate::time::Timestamp;

/// A draft's JSON may not exceed this; photos belong in the photo store, not in a draft.
pub const MAX_DRAFT_BYTES: usize = 4 * 1024 * 1024;

impl Store {
    /// Saves (replaces) a draft. `value` is the form's state as JSON text.
    pub fn put_draft(&self, key: &str, value: &str, at: Timestamp) -> Result<()> {
        if key.trim().is_empty() || key.len() > 200 {
            return Err(CoreError::invalid("key", "a draft needs a key of 1 to 200 bytes"));
        }
        if value.len() > MAX_DRAFT_BYTES {
            return Err(CoreError::invalid(
                "value",
                format!("a draft may hold at most {} MB", MAX_DRAFT_BYTES / (1024 * 1024)),
            ));
        }
        self.conn
            .prepare_cached(
                "INSERT INTO drafts (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )?
            .execute(params![key, value, at.millis()])?;
        Ok(())
    }

    /// The draft saved under `key`, with when it was saved (milliseconds).
    pub fn draft(&self, key: &str) -> Result<Option<(String, i64)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value, updated_at FROM drafts WHERE key = ?1")?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Forgets a draft (after its form was submitted). Returns whether there was one.
    pub fn delete_draft(&self, key: &str) -> Result<bool> {
        Ok(self.conn.prepare_cached("DELETE FROM drafts WHERE key = ?1")?.execute([key])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Identity;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::create(dir.path().join("s.db"), Identity { device: "d1".into(), walker: "w1".into() }).unwrap();
        (dir, s)
    }

    #[test]
    fn a_draft_survives_reopening_the_store_and_is_replaced_then_deleted() {
        let (dir, s) = store();
        let at = Timestamp::from_millis(1_700_000_000_000).unwrap();
        s.put_draft("visit:h1", r#"{"notes":"门口路灯坏了"}"#, at).unwrap();
        drop(s);
        let s = Store::open(dir.path().join("s.db")).unwrap();
        assert_eq!(s.draft("visit:h1").unwrap(), Some((r#"{"notes":"门口路灯坏了"}"#.to_string(), at.millis())));
        s.put_draft("visit:h1", "{}", at).unwrap();
        assert_eq!(s.draft("visit:h1").unwrap().unwrap().0, "{}");
        assert!(s.delete_draft("visit:h1").unwrap());
        assert!(!s.delete_draft("visit:h1").unwrap());
        assert_eq!(s.draft("visit:h1").unwrap(), None);
    }

    #[test]
    fn an_empty_key_or_an_oversized_draft_is_refused_and_nothing_is_saved() {
        let (_dir, s) = store();
        let at = Timestamp::from_millis(1_700_000_000_000).unwrap();
        assert_eq!(s.put_draft(" ", "{}", at).unwrap_err().code(), "invalid_input");
        let big = "x".repeat(MAX_DRAFT_BYTES + 1);
        assert_eq!(s.put_draft("k", &big, at).unwrap_err().code(), "invalid_input");
        assert_eq!(s.draft("k").unwrap(), None);
    }
}
