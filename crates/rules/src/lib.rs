//! The filter and rule language of PocketBase, compiled to SQL predicates.
//!
//! This is the foundation's skeleton: it knows the three kinds of rule (locked, public,
//! expression) and fails closed on expressions, which deny every non-superuser until the
//! full language (parser, checker, SQL emitter, evaluator) lands here.

use domain::{AuthContext, SqlFragment};

/// What a collection rule means for one caller.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleOutcome {
    /// `null` rule and the caller is not a superuser: 403.
    SuperusersOnly,
    /// No restriction: a superuser, or the rule is `""`.
    Allow,
    /// Rows must satisfy this predicate (AND-ed into the query, or checked on the row).
    Filter(SqlFragment),
}

/// Resolves `rule` for `auth`. Superusers bypass every rule.
pub fn rule_outcome(rule: Option<&str>, auth: &AuthContext) -> RuleOutcome {
    if auth.is_superuser() {
        return RuleOutcome::Allow;
    }
    match rule {
        None => RuleOutcome::SuperusersOnly,
        Some(text) if text.trim().is_empty() => RuleOutcome::Allow,
        // FIXME(#4): compile the expression; until then it matches no row (fail closed).
        Some(_) => RuleOutcome::Filter(SqlFragment::raw("0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
