//! The shared kernel: small primitives every layer may use (who is acting,
//! where a request came from, random tokens, sealed fields). It sits at the
//! bottom with `db` and `config`: it imports no business area and not `web`.

pub mod client;
pub mod places;
pub mod principal;
pub mod signer;
pub mod slug;
pub mod tokens;
pub mod vault;

pub use client::ClientInfo;
pub use principal::{Role, SessionUser};
pub use signer::LinkSigner;
