//! The generated sections of `BENCHMARKS.md`: each bench that writes one (`report`, `auto`)
//! replaces what lies between its own pair of markers and leaves the rest of the file alone.

use std::path::Path;

/// A generated section: its markers, and how it is laid out.
pub(crate) struct Section {
    pub begin: &'static str,
    pub end: &'static str,
    /// Whether a blank line separates the generated text from `end` (`auto`'s section has one,
    /// `report`'s not).
    pub blank_line_before_end: bool,
    /// In a file without the markers: the heading to add the section under, at the end (an
    /// empty file gets only the heading and the section); `None`: the section goes, without a
    /// heading, before the file's first `## ` heading (or at its end).
    pub heading: Option<&'static str>,
}

/// Replaces what lies between the section's markers in `path` with `generated`, or adds the
/// markers with it (see [`Section::heading`]).
pub(crate) fn splice_into(path: &Path, section: &Section, generated: &str) {
    let Section { begin, end, .. } = *section;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let gap = if section.blank_line_before_end {
        "\n\n"
    } else {
        "\n"
    };
    let block = format!("{begin}\n\n{}{gap}{end}", generated.trim_end());
    let updated = match (text.find(begin), text.find(end)) {
        (Some(at_begin), Some(at_end)) if at_begin < at_end => {
            format!(
                "{}{block}{}",
                &text[..at_begin],
                &text[at_end + end.len()..]
            )
        }
        _ => match section.heading {
            Some(heading) if text.trim().is_empty() => format!("{heading}\n\n{block}\n"),
            Some(heading) => format!("{}\n\n{heading}\n\n{block}\n", text.trim_end()),
            None => match text.find("\n## ") {
                Some(at) => format!("{}\n{block}\n{}", &text[..at + 1], &text[at + 1..]),
                None => format!("{text}\n{block}\n"),
            },
        },
    };
    std::fs::write(path, updated).expect("BENCHMARKS.md is written");
}
