//! Convergence checks in the style of FRR topotests: compare JSON output against an *expected
//! subset* and poll until it matches, never sleeping for a fixed time.
//!
//! [`json_cmp`] semantics (FRR `topotest.json_cmp`):
//! - objects: every key of `expected` must match in `output`; extra keys in `output` are fine;
//!   an expected value of `null` means the key must be *absent*; `"*"` means present, any value;
//! - arrays: each expected element must match some distinct output element (order ignored),
//!   unless the expected array starts with the string `"__ordered__"`, then element i must match
//!   element i;
//! - scalars: equal.
//!
//! The result is `None` on a match, or a list of differences, each naming the JSON path.

use std::time::Duration;

use serde_json::Value;

/// Compares `output` against the expected subset; `None` means it matches.
pub fn json_cmp(output: &Value, expected: &Value) -> Option<Vec<String>> {
    let mut diffs = Vec::new();
    cmp(output, expected, "$", &mut diffs);
    if diffs.is_empty() {
        None
    } else {
        Some(diffs)
    }
}

fn cmp(out: &Value, exp: &Value, path: &str, diffs: &mut Vec<String>) {
    match (out, exp) {
        (_, Value::String(s)) if s == "*" => {}
        (Value::Object(o), Value::Object(e)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match (o.get(k), ev) {
                    (None, Value::Null) => {}
                    (Some(ov), Value::Null) => {
                        diffs.push(format!("{p}: expected absent, got {ov}"));
                    }
                    (None, _) => diffs.push(format!("{p}: missing (expected {ev})")),
                    (Some(ov), _) => cmp(ov, ev, &p, diffs),
                }
            }
        }
        (Value::Array(o), Value::Array(e)) => {
            if e.first().and_then(Value::as_str) == Some("__ordered__") {
                let e = &e[1..];
                if o.len() < e.len() {
                    diffs.push(format!(
                        "{path}: expected at least {} elements, got {}",
                        e.len(),
                        o.len()
                    ));
                    return;
                }
                for (i, ev) in e.iter().enumerate() {
                    cmp(&o[i], ev, &format!("{path}[{i}]"), diffs);
                }
            } else {
                let mut used = vec![false; o.len()];
                for (i, ev) in e.iter().enumerate() {
                    let hit = o
                        .iter()
                        .enumerate()
                        .position(|(j, ov)| !used[j] && json_cmp(ov, ev).is_none());
                    match hit {
                        Some(j) => used[j] = true,
                        None => diffs.push(format!("{path}[{i}]: no element matches {ev}")),
                    }
                }
            }
        }
        _ if out == exp => {}
        _ => diffs.push(format!("{path}: expected {exp}, got {out}")),
    }
}

/// Calls `f` up to `count` times, `wait` apart, until it returns `None` (FRR
/// `run_and_expect(func, None, count, wait)`); returns the last result (`None` = success).
pub fn run_and_expect<T>(
    count: u32,
    wait: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let mut last = None;
    for i in 0..count {
        last = f();
        last.as_ref()?;
        if i + 1 < count {
            std::thread::sleep(wait);
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_semantics() {
        let out = json!({"a": 1, "b": {"c": [1, 2, 3], "d": "x"}, "e": [{"n": "i1", "v": 5}, {"n": "i2"}]});
        assert!(json_cmp(&out, &json!({"a": 1})).is_none());
        assert!(json_cmp(&out, &json!({"b": {"d": "*"}, "z": null})).is_none());
        assert!(json_cmp(&out, &json!({"b": {"c": [3, 1]}})).is_none());
        assert!(json_cmp(&out, &json!({"e": [{"n": "i2"}, {"n": "i1", "v": 5}]})).is_none());
        let d = json_cmp(&out, &json!({"a": 2, "q": "*", "b": {"d": null}})).unwrap();
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d.iter().any(|x| x.starts_with("$.a: expected 2")));
        assert!(d.iter().any(|x| x.starts_with("$.q: missing")));
        assert!(d.iter().any(|x| x.starts_with("$.b.d: expected absent")));
        assert!(json_cmp(&out, &json!({"b": {"c": ["__ordered__", 1, 2]}})).is_none());
        assert!(json_cmp(&out, &json!({"b": {"c": ["__ordered__", 2, 1]}})).is_some());
        // Each expected element needs its own output element.
        assert!(json_cmp(&json!([1]), &json!([1, 1])).is_some());
    }

    #[test]
    fn run_and_expect_polls_until_match() {
        let mut n = 0;
        let r = run_and_expect(10, Duration::from_millis(1), || {
            n += 1;
            (n < 3).then_some(n)
        });
        assert!(r.is_none());
        assert_eq!(n, 3);
        let r = run_and_expect(2, Duration::from_millis(1), || Some("never"));
        assert_eq!(r, Some("never"));
    }
}
