//! The Tauri shell. It opens the window, finds the app's data directory, and forwards the UI's
//! one command, `call(cmd, args)`, to `gridwalk_app_api::App::call`, the same function the
//! browser bridge serves. Errors cross as `{code, message}`. Only this crate knows Tauri.

use std::sync::Arc;

use gridwalk_app_api::{App, CommandError, SyncSettings};
use gridwalk_core::store::keys::FileKeystore;
use gridwalk_core::SystemClock;
use serde_json::Value;
use tauri::Manager;

pub use gridwalk_app_api::CommandError as BoundaryError;

/// The UI's only door into the core.
#[tauri::command]
async fn call(app: tauri::State<'_, Arc<App>>, cmd: String, args: Value) -> Result<Value, CommandError> {
    let app = Arc::clone(&app);
    // The core blocks (SQLite, photo decoding, the relay client): keep it off the async runtime.
    tauri::async_runtime::spawn_blocking(move || app.call(&cmd, args))
        .await
        .map_err(|e| CommandError::new("internal", format!("the command stopped: {e}")))?
}

#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .try_init();
    tauri::Builder::default()
        .setup(|tauri_app| {
            // GRIDWALK_DATA_DIR lets the run script and the tests give each device its own folder.
            // The store's key is sealed by the desktop keystore, a file in the user's
            // configuration folder, apart from the data folder (see `FileKeystore`); a folder
            // given by GRIDWALK_DATA_DIR keeps its keystore beside it.
            let (data_dir, keystore): (std::path::PathBuf, _) = match std::env::var_os("GRIDWALK_DATA_DIR") {
                Some(dir) => {
                    let dir: std::path::PathBuf = dir.into();
                    let keystore = gridwalk_app_api::default_keystore(&dir);
                    (dir, keystore)
                }
                None => (
                    tauri_app.path().app_data_dir()?,
                    FileKeystore::new(tauri_app.path().app_config_dir()?.join("device-key")),
                ),
            };
            // On Android the configuration folder is in the same private storage as the data,
            // so a file there would seal nothing a copy of that storage lacks: until the
            // Android Keystore plugin fills the seam (README, Android), the PIN alone locks it.
            let keystore: Option<Arc<dyn gridwalk_core::store::keys::Keystore>> =
                if cfg!(mobile) { None } else { Some(Arc::new(keystore)) };
            let app = App::open_with_keystore(&data_dir, Arc::new(SystemClock), SyncSettings::default(), keystore)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
            tracing::info!(data_dir = %data_dir.display(), "gridwalk app started");
            tauri_app.manage(Arc::new(app));
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![call])
        .run(tauri::generate_context!())
        .expect("the Tauri app runs");
}

#[cfg(test)]
mod tests {
    use gridwalk_core::CoreError;

    use super::*;

    #[test]
    fn core_errors_cross_the_boundary_as_code_and_message() {
        let e: CommandError = CoreError::UnknownGrid("g9".into()).into();
        assert_eq!(e.code, "unknown_grid");
        assert!(e.message.contains("g9"));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "unknown_grid");
        assert_eq!(json.as_object().unwrap().len(), 2, "only code and message cross: {json}");
    }
}
