// Node-API symbols are resolved against the running `node` when the addon loads. Linux linkers
// allow undefined symbols in a shared library by default; Apple's needs to be told.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-cdylib-link-arg=-undefined");
        println!("cargo:rustc-cdylib-link-arg=dynamic_lookup");
    }
}
