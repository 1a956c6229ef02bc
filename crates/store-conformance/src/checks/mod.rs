//! The checks, one `pub async fn(&Engine)` each, grouped by the part of the port they hold to
//! its documentation. `conformance_tests!` lists every one of them (a unit test keeps the list
//! complete).

mod changes;
mod collections;
mod concurrency;
mod lists;
mod records;
mod relations;
mod sql_console;
mod time_limits;
mod transactions;
mod values;
mod views;

pub use changes::*;
pub use collections::*;
pub use concurrency::*;
pub use lists::*;
pub use records::*;
pub use relations::*;
pub use sql_console::*;
pub use time_limits::*;
pub use transactions::*;
pub use values::*;
pub use views::*;
