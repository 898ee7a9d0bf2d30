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
    let mut widths: Vec<usize> = headers.iter().map(|h| display_width(h)).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(display_width(cell));
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(display_width(c));
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

/// How many terminal columns `s` takes: East Asian wide and fullwidth characters (汉字, kana, hangul, fullwidth
/// forms, most emoji) take two, so a table with Chinese names lines up.
pub(super) fn display_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    let c = u32::from(c);
    let wide = matches!(c,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD);
    if wide {
        2
    } else if c < 0x20 || (0x300..=0x36F).contains(&c) || c == 0x200B {
        // Control characters and combining marks take no column.
        0
    } else {
        1
    }
}

/// A JSON field as table text.
pub(super) fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_takes_two_columns() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("店员小王"), 8);
        assert_eq!(display_width("咖啡 Cafe"), 9);
        assert_eq!(display_width("ｗｘ"), 4);
        assert_eq!(display_width("e\u{301}"), 1);
    }
}
