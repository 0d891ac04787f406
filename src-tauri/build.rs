fn main() {
    // Only the app's one command gets a permission ("allow-call"); the capability file grants
    // it to the main window and nothing else.
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(&["call"])),
    )
    .expect("tauri-build: the configuration and capabilities are valid");
}
