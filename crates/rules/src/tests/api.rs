//! The public entry points.

use domain::{AuthContext, SqlFragment};

use crate::{RuleOutcome, rule_outcome};

#[test]
fn guests_get_locked_public_and_closed_rules() {
    let guest = AuthContext::Guest;
    assert_eq!(rule_outcome(None, &guest), RuleOutcome::SuperusersOnly);
    assert_eq!(rule_outcome(Some(""), &guest), RuleOutcome::Allow);
    assert_eq!(
        rule_outcome(Some("id = @request.auth.id"), &guest),
        RuleOutcome::Filter(SqlFragment::raw("0"))
    );
}
