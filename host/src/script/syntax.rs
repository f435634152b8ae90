//! Better syntax-error positions. Rhai reports a missing `}` (or `)`, `]`)
//! where it gave up — usually the end of the file; the useful place is the
//! bracket that was never closed. This scans the source the way Rhai's
//! tokenizer does for brackets (skipping strings, characters, raw strings
//! and nested comments) and finds it.

/// Line and column (1-based) of the innermost bracket of kind `open` that
/// is never closed, if there is one.
pub fn unclosed(text: &str, open: char) -> Option<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut col) = (0, 1, 1);
    // Open brackets with their positions; `${` of a template counts as `{`.
    let mut stack: Vec<(char, usize, usize)> = Vec::new();
    // Depth of the stack at which each open backtick string resumes.
    let mut templates: Vec<usize> = Vec::new();
    let mut in_template = false;
    macro_rules! bump {
        () => {{
            if chars[i] == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if in_template {
            match c {
                '`' => {
                    in_template = false;
                    templates.pop();
                    bump!();
                }
                '$' if next == Some('{') => {
                    stack.push(('{', line, col));
                    in_template = false;
                    bump!();
                    bump!();
                }
                _ => bump!(),
            }
            continue;
        }
        match (c, next) {
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    bump!();
                }
            }
            ('/', Some('*')) => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        bump!();
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        bump!();
                        if depth == 0 {
                            bump!();
                            break;
                        }
                    }
                    bump!();
                }
            }
            ('"', _) | ('\'', _) => {
                bump!();
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        bump!();
                    }
                    if i < chars.len() {
                        bump!();
                    }
                }
                if i < chars.len() {
                    bump!();
                }
            }
            ('#', Some('#')) | ('#', Some('"')) => {
                let mut hashes = 0;
                while i < chars.len() && chars[i] == '#' {
                    hashes += 1;
                    bump!();
                }
                if chars.get(i) != Some(&'"') {
                    continue;
                }
                bump!();
                while i < chars.len() {
                    if chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|&&h| h == '#').count() == hashes {
                        for _ in 0..=hashes {
                            bump!();
                        }
                        break;
                    }
                    bump!();
                }
            }
            ('`', _) => {
                templates.push(stack.len());
                in_template = true;
                bump!();
            }
            ('{', _) | ('(', _) | ('[', _) => {
                stack.push((c, line, col));
                bump!();
            }
            ('}', _) | (')', _) | (']', _) => {
                let want = match c {
                    '}' => '{',
                    ')' => '(',
                    _ => '[',
                };
                // Closing the `${` of a template returns into the string.
                if c == '}' && templates.last().is_some_and(|&d| d + 1 == stack.len()) {
                    stack.pop();
                    in_template = true;
                } else if stack.last().is_some_and(|t| t.0 == want) {
                    stack.pop();
                }
                bump!();
            }
            _ => bump!(),
        }
    }
    stack.iter().rev().find(|t| t.0 == open).map(|t| (t.1, t.2))
}

/// The opening bracket for a missing closing token, if it is one.
pub fn opener_of(token: &str) -> Option<char> {
    match token {
        "}" => Some('{'),
        ")" => Some('('),
        "]" => Some('['),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::unclosed;

    #[test]
    fn finds_the_bracket_left_open() {
        let text = "fn a() {\n    if x {\n        foo(\"}\");\n    // }\n}\n\nfn b() { `${ #{a: 1} }` }\n";
        assert_eq!(unclosed(text, '{'), Some((1, 8)));
        assert_eq!(unclosed("fn a() { b(1, [2, 3) }", '['), Some((1, 15)));
        assert_eq!(unclosed("let s = #\"{\"#; /* { /* { */ */ fn x() {}", '{'), None);
    }
}
