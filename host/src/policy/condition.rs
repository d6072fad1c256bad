//! A rule's CEL condition, bounded before it is trusted.
//!
//! The `cel` crate parses and evaluates by recursion, one level (or
//! several) of the Rust stack per level of the expression: a condition of
//! 3,000 chained `+` is a tree 3,000 deep, and evaluating it overflowed a
//! worker thread's stack and aborted the host. Its parser bounds the
//! nesting of brackets (96) but not a chain of operators or of field
//! selections, which it builds as deep as the chain is long.
//!
//! So a condition is held to two bounds before it is used: its size
//! ([`MAX_CONDITION_BYTES`], checked before parsing), and the depth of the
//! expression the parser made of it ([`MAX_CONDITION_DEPTH`], measured
//! without recursion). Parsing itself runs on a thread of its own whose
//! stack is large enough for the deepest text the size bound lets through,
//! so no text can overflow it; evaluation of what passes needs a bounded
//! stack (`tests` below measures it on a thread with a worker's stack).

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

use crate::model::text::truncated;

/// Longest condition, in bytes. Conditions operators write are tens to a
/// few hundred bytes (a list of values included); 4 KiB leaves room for
/// more without letting a generated text in.
pub const MAX_CONDITION_BYTES: usize = 4096;
/// Deepest expression a condition may parse into. `a && b && ...` is kept
/// balanced by the parser (100 terms are 8 deep), a call or a bracket is
/// one level, a field selection one per dot; `1 + 2 + ...` is one level per
/// term. Evaluating at this depth takes at most 4 MiB of stack in a debug
/// build (measured on the shapes in `tests`), far less in a release build.
pub const MAX_CONDITION_DEPTH: usize = 64;
/// The stack conditions are evaluated on: 16 times what the deepest
/// expression within the bounds needs in a debug build. Reserved, not
/// touched: only the pages an evaluation uses are ever mapped.
pub const EVALUATION_STACK_BYTES: usize = 64 * 1024 * 1024;
/// The parser's own thread stack: enough for the deepest text of
/// [`MAX_CONDITION_BYTES`] bytes in a debug build, with room to spare
/// (`tests` parses the worst shapes on it). It is reserved, not touched:
/// only the pages a parse uses are ever mapped.
const PARSER_STACK_BYTES: usize = 256 * 1024 * 1024;
/// Most of a condition quoted back in an error.
const EXCERPT_BYTES: usize = 120;
/// Most of the parser's own message kept in an error.
const PARSER_MESSAGE_BYTES: usize = 512;

/// Why a condition is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("the condition is {bytes} bytes, over the bound of {MAX_CONDITION_BYTES} bytes")]
    TooLong { bytes: usize },
    #[error("the condition nests {depth} levels deep, over the bound of {MAX_CONDITION_DEPTH} levels")]
    TooDeep { depth: usize },
    #[error("condition `{excerpt}` does not parse: {message}")]
    DoesNotParse { excerpt: String, message: String },
}

/// Compile each of `sources` on the parser's thread: each a program, or why
/// it is not used.
pub fn compile_all(env: &cel::Env, sources: &[&str]) -> Vec<Result<cel::Program, ConditionError>> {
    let compiled = crate::stack::on_own_stack("cel-parser", PARSER_STACK_BYTES, || {
        sources.iter().map(|s| compile(env, s)).collect()
    });
    match compiled {
        Some(programs) => programs,
        // No thread (out of threads), or a panic in the parser: each
        // condition is refused rather than parsed where it might not fit.
        None => sources
            .iter()
            .map(|s| {
                Err(ConditionError::DoesNotParse {
                    excerpt: excerpt(s),
                    message: "the parser failed".into(),
                })
            })
            .collect(),
    }
}

/// Compile one condition within the bounds (on a stack that fits any text
/// of [`MAX_CONDITION_BYTES`]).
fn compile(env: &cel::Env, source: &str) -> Result<cel::Program, ConditionError> {
    if source.len() > MAX_CONDITION_BYTES {
        return Err(ConditionError::TooLong { bytes: source.len() });
    }
    let program = env.compile(source).map_err(|e| ConditionError::DoesNotParse {
        excerpt: excerpt(source),
        message: truncated(e.to_string(), PARSER_MESSAGE_BYTES),
    })?;
    match depth(program.expression()) {
        depth if depth > MAX_CONDITION_DEPTH => Err(ConditionError::TooDeep { depth }),
        _ => Ok(program),
    }
}

/// The start of `source`, on one line, for an error message.
fn excerpt(source: &str) -> String {
    truncated(source.replace(['\n', '\r'], " "), EXCERPT_BYTES)
}

/// How many levels deep `root` is (a leaf is 1), walked with a stack of
/// its own rather than by recursion.
pub fn depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(root, 1usize)];
    while let Some((node, level)) = pending.pop() {
        deepest = deepest.max(level);
        let below = level + 1;
        match &node.expr {
            Expr::Call(call) => {
                pending.extend(call.target.as_deref().map(|t| (t, below)));
                pending.extend(call.args.iter().map(|a| (a, below)));
            }
            Expr::Comprehension(c) => {
                let parts = [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result];
                pending.extend(parts.into_iter().map(|p| (p, below)));
            }
            Expr::List(list) => pending.extend(list.elements.iter().map(|e| (e, below))),
            Expr::Map(map) => pending.extend(map.entries.iter().flat_map(|e| entry(&e.expr, below))),
            Expr::Struct(s) => pending.extend(s.entries.iter().flat_map(|e| entry(&e.expr, below))),
            Expr::Select(select) => pending.push((&select.operand, below)),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    deepest
}

/// The expressions of a map or struct entry, at `level`.
fn entry(entry: &EntryExpr, level: usize) -> Vec<(&IdedExpr, usize)> {
    match entry {
        EntryExpr::MapEntry(e) => vec![(&e.key, level), (&e.value, level)],
        EntryExpr::StructField(f) => vec![(&f.value, level)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn chain(op: &str, terms: usize) -> String {
        vec!["1"; terms].join(op)
    }

    /// Shapes that nest one level per term, each `depth` deep or as near as
    /// its syntax allows.
    fn deep_shapes(depth: usize) -> Vec<String> {
        let n = depth - 2;
        vec![
            format!("{} > 0", chain(" + ", n)),
            format!("{} > 0", chain(" * ", n)),
            format!("{} != ''", vec!["'ab'"; n].join(" + ")),
            format!("args{} == 1", ".a".repeat(n)),
            format!("{}1{} > 0", "size([".repeat(n / 3), "])".repeat(n / 3)),
            format!("{}true{}", "[true].all(x, ".repeat(n / 4), ")".repeat(n / 4)),
            format!("{}1{} == 1", "(true ? ".repeat(n / 2), " : 0)".repeat(n / 2)),
        ]
    }

    fn evaluate_on(stack: usize, source: String) -> Result<cel::Value, String> {
        let env = Arc::new(cel::Env::stdlib());
        let programs = compile_all(&env, &[&source]);
        let program = programs.into_iter().next().unwrap().map_err(|e| e.to_string())?;
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || {
                let mut context = cel::Context::with_env(env);
                context.add_variable("args", serde_json::json!({})).unwrap();
                program.execute(&context).map_err(|e| e.to_string())
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn what_passes_the_bounds_evaluates_on_a_quarter_of_the_evaluation_stack() {
        for source in deep_shapes(MAX_CONDITION_DEPTH) {
            let env = cel::Env::stdlib();
            let program = compile_all(&env, &[&source]).remove(0);
            assert!(program.is_ok(), "{source}: {program:?}");
            // Evaluated, whether to a value or to an error (no such field):
            // what matters is that the thread did not overflow.
            let _ = evaluate_on(EVALUATION_STACK_BYTES / 4, source);
        }
    }

    #[test]
    fn a_chain_over_the_depth_bound_is_refused_with_the_bound_named() {
        let env = cel::Env::stdlib();
        // The shapes one level deeper per term.
        for source in deep_shapes(MAX_CONDITION_DEPTH + 10).into_iter().take(4) {
            let e = compile_all(&env, &[&source]).remove(0).unwrap_err();
            assert!(matches!(e, ConditionError::TooDeep { .. }), "{source}: {e}");
            assert!(e.to_string().contains(&MAX_CONDITION_DEPTH.to_string()), "{e}");
        }
        // What aborted the host: 3,000 chained terms (12 KB).
        let e = compile_all(&env, &[&chain(" + ", 3000)]).remove(0).unwrap_err();
        assert_eq!(e, ConditionError::TooLong { bytes: 11_997 });
        assert!(e.to_string().contains("4096 bytes"), "{e}");
    }

    #[test]
    fn the_deepest_text_the_size_bound_lets_through_parses_on_the_parsers_stack() {
        let env = cel::Env::stdlib();
        let fill = |unit: &str, end: &str| {
            let mut text = unit.repeat((MAX_CONDITION_BYTES - end.len()) / unit.len());
            text.push_str(end);
            text
        };
        for text in [
            fill("1+", "1"),
            fill("a.", "a"),
            fill("(", ""),
            fill("[", ""),
            fill("!", "true"),
            fill("-", "1"),
            fill("a[0]", ""),
            fill("f(", ""),
            fill("true?1:", "0"),
            fill("{1:", ""),
        ] {
            assert!(text.len() <= MAX_CONDITION_BYTES);
            // Taken or refused (too deep, or not CEL): the test is that the
            // process is still here.
            let _ = compile_all(&env, &[&text]);
        }
    }

    #[test]
    fn the_depth_counts_every_kind_of_node() {
        let env = cel::Env::stdlib();
        let depth_of = |s: &str| depth(env.compile(s).unwrap().expression());
        assert_eq!(depth_of("true"), 1);
        assert_eq!(depth_of("args.a.b"), 3);
        assert_eq!(depth_of("1 + 2 + 3"), 3);
        assert_eq!(depth_of("{'k': [1 + 2]}"), 4);
        assert!(depth_of(&chain(" && ", 100)) <= 8);
        assert!(depth_of("[1].all(x, x > 0)") >= 3);
    }

    #[test]
    fn a_parse_error_quotes_a_bounded_excerpt() {
        let env = cel::Env::stdlib();
        let source = format!("args.amount > {}", "(".repeat(3000));
        let e = compile_all(&env, &[&source]).remove(0).unwrap_err().to_string();
        assert!(e.contains("does not parse"), "{e}");
        assert!(e.len() < EXCERPT_BYTES + PARSER_MESSAGE_BYTES + 100, "{}", e.len());
    }
}
