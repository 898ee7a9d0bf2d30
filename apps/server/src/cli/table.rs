//! Output: JSON, or an aligned table for people.

use super::CliError;

pub(super) fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| CliError::Usage(e.to_string()))?
    );
    Ok(())
}

/// Prints rows as an aligned table (headers first), or with `--json` the JSON value instead.
pub(super) fn print_rows(
    json: bool,
    value: &serde_json::Value,
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> Result<(), CliError> {
    if json {
        return print_json(value);
    }
    if rows.is_empty() {
        eprintln!("(none)");
        return Ok(());
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(c.chars().count());
                format!("{c}{}", " ".repeat(pad))
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(headers.iter().map(|h| (*h).to_owned()).collect()));
    for row in rows {
        println!("{}", line(row));
    }
    Ok(())
}

/// A JSON field as table text.
pub(super) fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
