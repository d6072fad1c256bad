//! Tool names, and the one mapping between the two forms agents use.
//!
//! A tool is `plugin.function` (valid as an MCP tool name). LLM function
//! calling forbids dots, so there it is `plugin_function`. The mapping is
//! reversible because neither part may contain `_`: plugin names are
//! `[a-z][a-z0-9-]*` and WIT function names are kebab-case.

/// Longest plugin name; keeps `plugin_function` within 64 characters for
/// functions of up to 31.
pub const MAX_PLUGIN_NAME: usize = 32;
/// LLM function-calling names are at most this long.
pub const MAX_FUNCTION_NAME: usize = 64;

pub fn check_plugin_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PLUGIN_NAME
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a plugin name: 1 to {MAX_PLUGIN_NAME} of a-z, 0-9 and '-', starting with a letter"
        ))
    }
}

/// `coupon` + `issue-voucher` → `coupon.issue-voucher`.
pub fn tool_name(plugin: &str, function: &str) -> String {
    format!("{plugin}.{function}")
}

/// Whether a tool pattern of a grant or a rule names `tool`: the tool
/// itself, or `plugin.*` for each of that plugin's tools.
pub fn pattern_matches(pattern: &str, tool: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(plugin) => tool.split_once('.').is_some_and(|(p, _)| p == plugin),
        None => pattern == tool,
    }
}

/// The LLM function-calling form: `coupon_issue-voucher`.
pub fn function_name(tool: &str) -> String {
    tool.replacen('.', "_", 1)
}

/// Split a tool name in either form into (plugin, function).
pub fn split(tool: &str) -> Option<(&str, &str)> {
    let (plugin, function) = tool.split_once('.').or_else(|| tool.split_once('_'))?;
    (check_plugin_name(plugin).is_ok() && is_wit_name(function)).then_some((plugin, function))
}

/// The one name of a tool given in either form: `coupon_issue-voucher` →
/// `coupon.issue-voucher`; `None` when it is no tool name at all. A name
/// already in that form is given back as it is, without a copy: every call
/// asks. The function-calling form may be in snake_case throughout, as
/// models and clients that normalise names write it: `coupon_issue_voucher`
/// is the same tool (unambiguous, since neither part may hold a `_`).
pub fn canonical(tool: &str) -> Option<std::borrow::Cow<'_, str>> {
    let Some((plugin, function)) = split(tool) else {
        let (plugin, function) = tool.split_once('_').filter(|_| !tool.contains('.'))?;
        let function = function.replace('_', "-");
        let valid = check_plugin_name(plugin).is_ok() && is_wit_name(&function);
        return valid.then(|| std::borrow::Cow::Owned(tool_name(plugin, &function)));
    };
    Some(if tool.as_bytes().get(plugin.len()) == Some(&b'.') {
        std::borrow::Cow::Borrowed(tool)
    } else {
        std::borrow::Cow::Owned(tool_name(plugin, function))
    })
}

/// WIT identifiers: kebab-case words of lower-case letters and digits (the
/// component model also allows upper-case words; we take them too).
pub fn is_wit_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.split('-').all(|w| {
            !w.is_empty()
                && w.as_bytes()[0].is_ascii_alphabetic()
                && (w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    || w.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_round_trip() {
        let tool = tool_name("coupon", "issue-voucher");
        assert_eq!(tool, "coupon.issue-voucher");
        assert_eq!(function_name(&tool), "coupon_issue-voucher");
        assert_eq!(split(&tool), Some(("coupon", "issue-voucher")));
        assert_eq!(split(&function_name(&tool)), Some(("coupon", "issue-voucher")));
        assert_eq!(
            canonical("coupon_issue_voucher").as_deref(),
            Some("coupon.issue-voucher")
        );
        assert_eq!(
            canonical("coupon_issue-voucher").as_deref(),
            Some("coupon.issue-voucher")
        );
        for bad in [
            "coupon_",
            "coupon__x",
            "coupon_x_",
            "coupon.x_y",
            "Coupon_x_y",
            "coupon_x y",
        ] {
            assert_eq!(canonical(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refuses_tricks() {
        for bad in [
            "",
            "coupon",
            "../etc.passwd",
            "coupon.",
            ".x",
            "Coupon.x",
            "coupon.x_y",
            "a.b.c",
            "coupon.issue voucher",
        ] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
        assert!(check_plugin_name("a-b-").is_err());
        assert!(check_plugin_name(&"a".repeat(33)).is_err());
    }
}
