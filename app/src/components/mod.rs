//! Pieces shared by the pages.

pub mod form;
pub mod layout;
