//! Pieces shared by the pages.

pub mod budget;
pub mod chart;
pub mod form;
pub mod layout;
pub mod limit;
