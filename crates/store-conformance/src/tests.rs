//! Keeps `conformance_tests!` complete: every check in `checks/` is listed once, and nothing
//! else is.

const LIB: &str = include_str!("lib.rs");
const CHECK_FILES: &[&str] = &[
    include_str!("checks/changes.rs"),
    include_str!("checks/collections.rs"),
    include_str!("checks/concurrency.rs"),
    include_str!("checks/lists.rs"),
    include_str!("checks/records.rs"),
    include_str!("checks/relations.rs"),
    include_str!("checks/sql_console.rs"),
    include_str!("checks/time_limits.rs"),
    include_str!("checks/transactions.rs"),
    include_str!("checks/values.rs"),
    include_str!("checks/views.rs"),
];

#[test]
fn the_macro_lists_every_check_once() {
    let mut defined: Vec<&str> = CHECK_FILES
        .iter()
        .flat_map(|file| file.lines())
        .filter_map(|line| line.strip_prefix("pub async fn "))
        .map(|rest| rest.split('(').next().expect("a name"))
        .collect();
    let body = LIB
        .split("$crate::__conformance_tests!(")
        .nth(1)
        .and_then(|rest| rest.split(");").next())
        .expect("the macro's list");
    let mut listed: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("//") && !line.starts_with('$'))
        .filter_map(|line| line.strip_suffix(','))
        .collect();
    assert!(defined.len() >= 30, "{defined:?}");
    defined.sort_unstable();
    listed.sort_unstable();
    assert_eq!(listed, defined);
}
