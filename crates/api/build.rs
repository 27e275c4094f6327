// The schema is embedded by `sqlx::migrate!`, which cargo does not know reads `migrations/`: without
// this, adding a migration would not rebuild the binary that is meant to run it.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
