//! Text as the native evaluator writes it: values by the one text rule, and strings escaped
//! into JSON as serde_json escapes them.

use super::ast::V;
use crate::expr::value;

/// For each byte, the letter of its short escape (`\n`), `u` for `\u00XX`, or 0: as is.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` escaped as the inside of a JSON string, exactly as serde_json escapes it.
pub(super) fn escape_json(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut run = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let short = match ESCAPE[usize::from(b)] {
            0 => continue,
            b'u' => 0,
            c => c,
        };
        out.extend_from_slice(&s.as_bytes()[run..i]);
        run = i + 1;
        match short {
            0 => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
            c => out.extend_from_slice(&[b'\\', c]),
        }
    }
    out.extend_from_slice(&s.as_bytes()[run..]);
}

/// Appends `v` as text inside text, by the one text rule ([`value::push_text`]); undefined is
/// nothing.
pub(super) fn push_text(out: &mut String, v: &V) {
    if let Some(v) = v.get() {
        value::push_text(out, v);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("æøå – \u{2028}\u{10ffff}\\\"");
        for s in [all.as_str(), "", "plain", "\"", "a\nb", "\u{1f}x\u{7f}"] {
            let mut ours = vec![b'"'];
            super::escape_json(&mut ours, s);
            ours.push(b'"');
            let theirs = serde_json::to_string(s).unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&ours), theirs);
        }
    }
}
