//! The paged listing loop, exactly as terminus walks it (pantheon-api.md §2): `limit=100`,
//! the cursor is the id of the previous page's last item (never a made-up one: the API
//! answers an unknown cursor with page 1 again), stop on an empty page, a short page, or a
//! last id already collected. Items are kept once per id, in the order first seen.

use std::future::Future;

use indexmap::IndexMap;
use serde_json::Value;

use super::error::{ApiError, ApiErrorKind};

/// Page size; terminus's `PAGED_REQUEST_ENTRY_LIMIT`.
pub const PAGE_LIMIT: usize = 100;

/// Walks a paged collection. `fetch(cursor)` gets one page: `None` for the first, then the
/// last id of the page before. Items come back as JSON values.
#[cfg(test)]
pub(crate) async fn collect<F, Fut>(label: &str, fetch: F) -> Result<Vec<Value>, ApiError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Value, ApiError>>,
{
    collect_as(label, fetch, Ok).await
}

/// Walks a paged collection, `decode`-ing each item as its page comes: only one page is
/// ever held as JSON (5,000 sites as JSON trees would take tens of megabytes).
pub(crate) async fn collect_as<T, F, Fut>(
    label: &str,
    mut fetch: F,
    decode: impl Fn(Value) -> Result<T, String>,
) -> Result<Vec<T>, ApiError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Value, ApiError>>,
{
    let mut items: IndexMap<String, T> = IndexMap::new();
    let mut cursor = None;
    loop {
        let page = match fetch(cursor.take()).await? {
            Value::Array(list) => list,
            Value::Object(map) => map.into_iter().map(|(_, v)| v).collect(),
            Value::Null => Vec::new(),
            other => {
                return Err(ApiError::new(
                    label,
                    ApiErrorKind::Decode { message: format!("a listing page must be a list, not {}", kind_of(&other)) },
                ));
            }
        };
        let Some(last) = page.last() else { break };
        let last_page = page.len() < PAGE_LIMIT;
        let last_id = item_id(last).ok_or_else(|| {
            ApiError::new(label, ApiErrorKind::Decode { message: "a listed item has no `id`".to_owned() })
        })?;
        if items.contains_key(&last_id) {
            break;
        }
        for item in page {
            if let Some(id) = item_id(&item)
                && let indexmap::map::Entry::Vacant(slot) = items.entry(id)
            {
                let decoded = decode(item).map_err(|message| ApiError::new(label, ApiErrorKind::Decode { message }))?;
                slot.insert(decoded);
            }
        }
        if last_page {
            break;
        }
        cursor = Some(last_id);
    }
    Ok(items.into_values().collect())
}

fn item_id(item: &Value) -> Option<String> {
    match item.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::json;

    use super::*;

    fn page(ids: std::ops::Range<usize>) -> Value {
        Value::Array(ids.map(|i| json!({ "id": format!("{i:04}") })).collect())
    }

    #[tokio::test]
    async fn follows_the_last_id_and_stops_on_a_short_page() {
        let cursors = RefCell::new(Vec::new());
        let items = collect("GET x", |cursor| {
            cursors.borrow_mut().push(cursor.clone());
            let start = cursor.map_or(0, |c| c.parse::<usize>().unwrap() + 1);
            async move { Ok(page(start..(start + PAGE_LIMIT).min(250))) }
        })
        .await
        .unwrap();
        assert_eq!(items.len(), 250);
        assert_eq!(*cursors.borrow(), [None, Some("0099".to_owned()), Some("0199".to_owned())]);
    }

    #[tokio::test]
    async fn a_server_ignoring_the_cursor_stops_on_the_repeated_id() {
        let calls = RefCell::new(0);
        let items = collect("GET x", |_| {
            *calls.borrow_mut() += 1;
            async { Ok(page(0..PAGE_LIMIT)) }
        })
        .await
        .unwrap();
        assert_eq!((items.len(), *calls.borrow()), (PAGE_LIMIT, 2));
    }

    #[tokio::test]
    async fn empty_and_keyed_pages() {
        assert!(collect("GET x", |_| async { Ok(json!([])) }).await.unwrap().is_empty());
        let keyed = collect("GET x", |_| async { Ok(json!({"a": {"id": "a"}, "b": {"id": "b"}})) }).await.unwrap();
        assert_eq!(keyed.len(), 2);
        assert!(collect("GET x", |_| async { Ok(json!("nope")) }).await.is_err());
    }
}
