// `sqlx::migrate!` embeds `migrations/` at compile time; without this, a changed or new
// migration would not rebuild the crate, and binaries and tests would run the old set.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
