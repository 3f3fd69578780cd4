//! Text KeyValues (VDF): lossless lexing, a span-keeping tree and checked
//! byte splices. Pure: bytes in, bytes out.

pub mod doc;
pub mod edit;
pub mod lex;

pub use doc::{Document, Pair, ParseError, Value};
pub use edit::{Edit, VerifyError, checked_apply};
