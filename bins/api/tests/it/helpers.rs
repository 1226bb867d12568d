pub use testkit::*;
