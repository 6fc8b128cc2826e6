//! `stele admin status`'s table: one row per member of a `/gossip` document (PROTOCOL.md
//! §12, EventStoreDB's `ClientClusterInfo`), in the node's order (itself first). The node
//! that answered is marked with `*`. A field the document lacks shows as `-`.

use serde_json::Value;

/// How a member's cell of one column is made.
type Cell = fn(&Value) -> String;

/// The columns: heading and cell.
const COLUMNS: [(&str, Cell); 10] = [
    ("MEMBER", |m| {
        format!(
            "{}:{}",
            text(m, "httpEndPointIp"),
            text(m, "httpEndPointPort")
        )
    }),
    ("STATE", |m| text(m, "state")),
    ("ALIVE", |m| yes_no(m, "isAlive")),
    ("PRIORITY", |m| text(m, "nodePriority")),
    ("TERM", |m| text(m, "epochNumber")),
    ("WRITER", |m| text(m, "writerCheckpoint")),
    ("CHASER", |m| text(m, "chaserCheckpoint")),
    ("COMMIT", |m| text(m, "lastCommitPosition")),
    ("READ-ONLY", |m| yes_no(m, "isReadOnlyReplica")),
    ("INSTANCE", |m| text(m, "instanceId")),
];
/// Spaces between columns.
const GAP: &str = "  ";

/// The table for `gossip`, or why the document is not one.
pub(super) fn render(gossip: &Value) -> Result<String, String> {
    let members = gossip
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the /gossip answer has no members: {gossip}"))?;
    let server = (
        gossip.get("serverIp").and_then(Value::as_str),
        gossip.get("serverPort").and_then(Value::as_u64),
    );
    let mut rows = vec![COLUMNS
        .iter()
        .map(|(heading, _)| (*heading).to_string())
        .collect::<Vec<_>>()];
    for member in members {
        let answering = server.0.is_some()
            && member.get("httpEndPointIp").and_then(Value::as_str) == server.0
            && member.get("httpEndPointPort").and_then(Value::as_u64) == server.1;
        let mut row: Vec<String> = COLUMNS.iter().map(|(_, cell)| cell(member)).collect();
        if answering {
            row[0].push('*');
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|k| {
            rows.iter()
                .map(|row| row[k].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join(GAP);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// A field as text: strings unquoted, numbers as they are, `-` when absent.
fn text(member: &Value, field: &str) -> String {
    match member.get(field) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn yes_no(member: &Value, field: &str) -> String {
    match member.get(field).and_then(Value::as_bool) {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::render;

    #[test]
    fn one_row_per_member_with_the_answering_node_marked() {
        let gossip = json!({
            "members": [
                {
                    "instanceId": "01234567-89ab-cdef-0123-456789abcdef",
                    "state": "Leader", "isAlive": true,
                    "httpEndPointIp": "127.0.0.1", "httpEndPointPort": 2113,
                    "lastCommitPosition": 4096, "writerCheckpoint": 5000,
                    "chaserCheckpoint": 4500, "epochNumber": 3, "nodePriority": 5,
                    "isReadOnlyReplica": false,
                },
                {
                    "state": "ReadOnlyReplica", "isAlive": false,
                    "httpEndPointIp": "127.0.0.2", "httpEndPointPort": 2113,
                    "isReadOnlyReplica": true,
                },
            ],
            "serverIp": "127.0.0.1",
            "serverPort": 2113,
        });
        let table = render(&gossip).expect("a gossip document");
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let cells = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cells(lines[0]),
            [
                "MEMBER",
                "STATE",
                "ALIVE",
                "PRIORITY",
                "TERM",
                "WRITER",
                "CHASER",
                "COMMIT",
                "READ-ONLY",
                "INSTANCE"
            ]
        );
        assert_eq!(
            cells(lines[1]),
            [
                "127.0.0.1:2113*",
                "Leader",
                "yes",
                "5",
                "3",
                "5000",
                "4500",
                "4096",
                "no",
                "01234567-89ab-cdef-0123-456789abcdef"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            [
                "127.0.0.2:2113",
                "ReadOnlyReplica",
                "no",
                "-",
                "-",
                "-",
                "-",
                "-",
                "yes",
                "-"
            ]
        );
        // Columns line up: every STATE cell starts where its heading does.
        let state_at = lines[0].find("STATE").unwrap();
        assert_eq!(lines[1].find("Leader"), Some(state_at));
        assert_eq!(lines[2].find("ReadOnlyReplica"), Some(state_at));
    }

    #[test]
    fn a_document_without_members_is_refused() {
        assert!(render(&json!({ "error": "no" })).is_err());
    }
}
