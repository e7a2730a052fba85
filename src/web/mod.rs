//! The HTTP edge: request guards (current user, staff, client info), the CSRF
//! form guard, responders (pages, problem documents, flash redirects,
//! downloads), image uploads, catchers and fairings. Holds no business rules
//! and knows no business area: the session is resolved by the accounts
//! area's fairing, and what an area adds to every page is registered in
//! `lib.rs` as a [`page::LayoutParts`].

pub mod assets;
pub mod csrf;
pub mod csv;
pub mod download;
pub mod error;
pub mod fairings;
pub mod format;
pub mod guards;
pub mod metrics;
pub mod next;
pub mod outcome;
pub mod page;
pub mod paging;
pub mod ratelimit;
pub mod stream;
pub mod trail;
pub mod upload;
pub mod views;

pub use csrf::CsrfForm;
pub use error::{AppError, AppResult};
pub use guards::{ClientInfo, CurrentUser, StaffUser};
pub use page::{Flash, Page, Templates};
