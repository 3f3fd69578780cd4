//! Steam's files: pure readers and editors over their text.

pub mod appinfo;
pub mod appmanifest;
pub mod compat_tool;
pub mod localconfig;
pub mod loginusers;
pub mod tools;
