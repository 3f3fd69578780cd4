//! `cgsplit-install`: registers the cgsplit compatibility tool with Steam
//! and wraps one game's `LaunchOptions` in `localconfig.vdf` with the shim,
//! changing no other byte; `--remove` undoes it byte for byte.
//!
//! Pure (bytes in, bytes out): [`vdf`] (lossless lexer, tree, checked
//! splices), [`steam`] (localconfig, loginusers, manifests, compat tool
//! templates), [`elf`], [`state`]. Effects: [`steam_dir`] (roots, accounts,
//! is Steam running), [`fsio`] (the only writer), [`install`] (the steps).

pub mod elf;
pub mod error;
pub mod fsio;
pub mod install;
pub mod state;
pub mod steam;
pub mod steam_dir;
pub mod vdf;

pub use error::{Error, Result};
