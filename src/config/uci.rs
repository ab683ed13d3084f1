//! UCI text parser: the file syntax libuci reads (its `file.c`), without libuci.
//!
//! - One command per line, or several separated by `;`: `package <name>`,
//!   `config <type> [<name>]`, `option <name> <value>`, `list <name> <value>`. Like libuci,
//!   each keyword may be shortened to its first letter.
//! - A word is a run of unquoted text, `'single quoted'` text (taken literally) and
//!   `"double quoted"` text, glued together when adjacent: `'a'"b"c` is `abc`.
//! - A backslash, unquoted or inside double quotes, takes the next character literally
//!   (libuci does not decode `\n` or `\t` either); a backslash at the end of a line joins
//!   the next line. Unlike libuci, quoted text ends on its line: a quote left open at the
//!   end of a line is an error reported on that line (values with newlines have no use
//!   here, and a forgotten quote would otherwise swallow the rest of the file).
//! - `#` outside quotes starts a comment that runs to the end of the line.
//! - Section and option names are `[A-Za-z0-9_]+`; types are printable ASCII.
//! - `option x ''` removes `x`, as setting an empty value does in uci. `list` lines add to
//!   a list; a repeated `option` replaces the earlier value.
//!
//! Stricter than libuci: a missing value, an extra word after the value and an unknown
//! command are errors (libuci deletes the option, ignores the extra word only in non-strict
//! mode, and aborts the whole file respectively). Every error is collected, not just the first.

use super::Error;
use core::str::Chars;

/// An option's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `option name value`.
    Single(String),
    /// One or more `list name value` lines.
    List(Vec<String>),
}

/// One option of a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opt {
    pub name: String,
    pub value: Value,
    /// Line of the `option` line that set the value, or of the first `list` line.
    pub line: usize,
}

/// One `config` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub ty: String,
    /// `None` for anonymous sections.
    pub name: Option<String>,
    /// Position among the sections of the same type, as in uci's `@type[index]`.
    pub index: usize,
    /// Line of the `config` line.
    pub line: usize,
    /// In file order of first appearance.
    pub options: Vec<Opt>,
}

impl Section {
    /// How uci refers to this section: its name, or `@type[index]` when anonymous.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("@{}[{}]", self.ty, self.index),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Opt> {
        self.options.iter().find(|o| o.name == name)
    }

    fn set(&mut self, name: String, value: String, list: bool, line: usize) {
        let pos = self.options.iter().position(|o| o.name == name);
        match (pos, list) {
            (Some(i), false) if value.is_empty() => {
                self.options.remove(i);
            }
            (None, false) if value.is_empty() => {}
            (Some(i), false) => {
                self.options[i].value = Value::Single(value);
                self.options[i].line = line;
            }
            (Some(i), true) => {
                let old = &mut self.options[i].value;
                match old {
                    Value::List(items) => items.push(value),
                    // uci turns an option into a list that starts with the old value.
                    Value::Single(s) => *old = Value::List(vec![core::mem::take(s), value]),
                }
            }
            (None, list) => {
                let value = if list {
                    Value::List(vec![value])
                } else {
                    Value::Single(value)
                };
                self.options.push(Opt { name, value, line });
            }
        }
    }
}

/// `[A-Za-z0-9_]+`: what uci accepts as a section or option name.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What uci accepts as a section type: printable ASCII, no spaces.
fn is_type(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// C `isspace()`, which libuci uses to split words (Rust's ASCII test lacks `\v`).
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Parse a whole file. `file` is only used in error messages.
pub fn parse(file: &str, text: &str) -> Result<Vec<Section>, Vec<Error>> {
    let mut lexer = Lexer {
        chars: text.chars(),
        line: 1,
    };
    let mut sections: Vec<Section> = Vec::new();
    let mut per_type: std::collections::HashMap<String, usize> = Default::default();
    let mut errors = Vec::new();
    // After a broken `config` line its options are dropped without further noise.
    let mut skipping = false;
    let mut error = |line, section: Option<&Section>, option: Option<&str>, message: String| {
        errors.push(Error {
            file: file.to_string(),
            line,
            section: section.map(Section::label),
            option: option.map(str::to_string),
            message: super::one_line(&message),
        })
    };
    while let Some(statement) = lexer.statement() {
        let (line, words) = match statement {
            Ok(s) => s,
            Err((line, message)) => {
                error(line, sections.last(), None, message);
                continue;
            }
        };
        let Some((command, args)) = words.split_first() else {
            continue;
        };
        match command.as_str() {
            "package" | "p" => match args {
                [name] if !name.is_empty() => {}
                [] | [_] => error(line, None, None, "'package' needs a name".into()),
                [_, extra, ..] => error(
                    line,
                    None,
                    None,
                    format!("unexpected '{extra}' after the package name"),
                ),
            },
            "config" | "c" => {
                skipping = true;
                let (ty, name) = match args {
                    [ty] => (ty, ""),
                    [ty, name] => (ty, name.as_str()),
                    [] => {
                        error(line, None, None, "'config' needs a section type".into());
                        continue;
                    }
                    [_, _, extra, ..] => {
                        error(
                            line,
                            None,
                            None,
                            format!("unexpected '{extra}' after the section name"),
                        );
                        continue;
                    }
                };
                if !is_type(ty) {
                    error(line, None, None, format!("invalid section type '{ty}'"));
                } else if !name.is_empty() && !is_name(name) {
                    let msg =
                        format!("invalid section name '{name}': use only letters, digits and _");
                    error(line, None, None, msg);
                } else {
                    skipping = false;
                    // Counted per type as we go: a scan of all earlier sections would make
                    // parsing quadratic in their number.
                    let count = per_type.entry(ty.clone()).or_insert(0);
                    let index = *count;
                    *count += 1;
                    let name = (!name.is_empty()).then(|| name.to_string());
                    let options = Vec::new();
                    sections.push(Section {
                        ty: ty.clone(),
                        name,
                        index,
                        line,
                        options,
                    });
                }
            }
            "option" | "o" | "list" | "l" => {
                let list = command.starts_with('l');
                let section = if skipping { None } else { sections.last_mut() };
                let Some(section) = section else {
                    if !skipping {
                        error(
                            line,
                            None,
                            None,
                            format!("'{command}' before the first 'config' line"),
                        );
                    }
                    continue;
                };
                match args {
                    [name, value] if is_name(name) => {
                        section.set(name.clone(), value.clone(), list, line)
                    }
                    [] => error(
                        line,
                        Some(section),
                        None,
                        format!("'{command}' needs a name and a value"),
                    ),
                    [name] if is_name(name) => {
                        error(line, Some(section), Some(name), "has no value".into())
                    }
                    [name, _, extra, ..] if is_name(name) => {
                        let msg = format!("unexpected '{extra}' after the value (quote values that contain spaces)");
                        error(line, Some(section), Some(name), msg);
                    }
                    [name, ..] => {
                        let msg =
                            format!("invalid option name '{name}': use only letters, digits and _");
                        error(line, Some(section), None, msg);
                    }
                }
            }
            other => error(
                line,
                None,
                None,
                format!("unknown command '{other}' (expected config, option or list)"),
            ),
        }
    }
    if errors.is_empty() {
        Ok(sections)
    } else {
        Err(errors)
    }
}

/// A command's first line and its words.
type Command = (usize, Vec<String>);
/// A line and a message.
type SyntaxError = (usize, String);

/// Splits text into commands (lists of words), tracking line numbers.
struct Lexer<'a> {
    chars: Chars<'a>,
    line: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.clone().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    /// Skips a backslash that ends a line (or the file), and the line end; true if it did.
    fn continuation(&mut self) -> bool {
        let mut ahead = self.chars.clone();
        if ahead.next() != Some('\\') {
            return false;
        }
        let skip = match (ahead.next(), ahead.next()) {
            (None, _) => 1,
            (Some('\n'), _) => 2,
            (Some('\r'), Some('\n')) => 3,
            _ => return false,
        };
        for _ in 0..skip {
            self.bump();
        }
        true
    }

    fn skip_comment(&mut self) {
        while self.peek().is_some_and(|c| c != '\n') {
            self.bump();
        }
    }

    /// The next non-empty command: its first line and its words.
    fn statement(&mut self) -> Option<Result<Command, SyntaxError>> {
        loop {
            if self.continuation() {
                continue;
            }
            match self.peek()? {
                c if is_space(c) || c == ';' => drop(self.bump()),
                '#' => self.skip_comment(),
                _ => break,
            }
        }
        let line = self.line;
        let mut words = Vec::new();
        loop {
            if self.continuation() {
                continue;
            }
            match self.peek() {
                None => break,
                Some('\n' | ';') => {
                    self.bump();
                    break;
                }
                Some('#') => {
                    self.skip_comment();
                    break;
                }
                Some(c) if is_space(c) => drop(self.bump()),
                Some(_) => match self.word() {
                    Ok(word) => words.push(word),
                    Err(e) => return Some(Err(e)),
                },
            }
        }
        Some(Ok((line, words)))
    }

    fn word(&mut self) -> Result<String, SyntaxError> {
        let mut word = String::new();
        loop {
            if self.continuation() {
                continue;
            }
            match self.peek() {
                None => break,
                Some(c) if is_space(c) || c == ';' || c == '#' => break,
                Some(quote @ ('\'' | '"')) => {
                    let start = self.line;
                    self.bump();
                    loop {
                        if quote == '"' && self.continuation() {
                            continue;
                        }
                        // A quote still open at the end of its line is reported there,
                        // not wherever the next quote in the file happens to close it.
                        if self.peek() == Some('\n') {
                            return Err((start, format!("unterminated {quote} quote")));
                        }
                        match self.bump() {
                            None => return Err((start, format!("unterminated {quote} quote"))),
                            Some(c) if c == quote => break,
                            Some('\\') if quote == '"' => match self.bump() {
                                Some(c) => word.push(c),
                                None => return Err((start, format!("unterminated {quote} quote"))),
                            },
                            Some(c) => word.push(c),
                        }
                    }
                }
                Some('\\') => {
                    self.bump();
                    word.extend(self.bump());
                }
                Some(c) => {
                    self.bump();
                    word.push(c);
                }
            }
        }
        Ok(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<Section> {
        match parse("t", text) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn err(text: &str) -> Vec<String> {
        match parse("t", text) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn single(s: &Section, name: &str) -> String {
        match &s.get(name).expect("option").value {
            Value::Single(v) => v.clone(),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn sections_options_and_lines() {
        let s = ok("package uplinkd\n\nconfig interface 'wan'\n\toption device eth1 # trailing\n# c\nconfig member m1\n");
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].ty.as_str(), s[0].name.as_deref(), s[0].line),
            ("interface", Some("wan"), 3)
        );
        assert_eq!(
            s[0].options,
            vec![Opt {
                name: "device".into(),
                value: Value::Single("eth1".into()),
                line: 4
            }]
        );
        assert_eq!((s[1].name.as_deref(), s[1].line), (Some("m1"), 6));
    }

    #[test]
    fn quoting() {
        let s = ok(r##"config t
            option a 'x y'
            option b "x \"y\" \\ \n"
            option c 'a'"b"c
            option d 'no \escape'
            option e un\ quoted
            option f "#not a comment" # a comment
            option g a#b c
            option h 'it'\''s'
        "##);
        assert_eq!(single(&s[0], "a"), "x y");
        assert_eq!(single(&s[0], "b"), r#"x "y" \ n"#);
        assert_eq!(single(&s[0], "c"), "abc");
        assert_eq!(single(&s[0], "d"), r"no \escape");
        assert_eq!(single(&s[0], "e"), "un quoted");
        assert_eq!(single(&s[0], "f"), "#not a comment");
        assert_eq!(single(&s[0], "g"), "a");
        assert_eq!(single(&s[0], "h"), "it's");
    }

    #[test]
    fn continuation_and_multiline_quotes() {
        assert_eq!(
            err("config t\noption a 'one\ntwo'\noption c 'z'\n")[0],
            "t:2: section '@t[0]' unterminated ' quote"
        );
        let s = ok("config t\noption a 'one two'\noption b \"x\\\ny\"\noption \\\n c z\r\noption d ab\\\ncd\n");
        assert_eq!(single(&s[0], "a"), "one two");
        assert_eq!(single(&s[0], "b"), "xy");
        assert_eq!(single(&s[0], "c"), "z");
        assert_eq!(single(&s[0], "d"), "abcd");
        assert_eq!(s[0].get("d").map(|o| o.line), Some(7));
    }

    #[test]
    fn semicolons_and_short_commands() {
        let s = ok("c t 'n'; o a 1; l b 2;l b 3\n");
        assert_eq!(single(&s[0], "a"), "1");
        assert_eq!(
            s[0].get("b").map(|o| &o.value),
            Some(&Value::List(vec!["2".into(), "3".into()]))
        );
    }

    #[test]
    fn anonymous_sections_are_indexed_per_type() {
        let s = ok("config rule\nconfig policy p\nconfig rule ''\nconfig rule\n");
        let labels: Vec<_> = s.iter().map(Section::label).collect();
        assert_eq!(labels, ["@rule[0]", "p", "@rule[1]", "@rule[2]"]);
    }

    #[test]
    fn lists_accumulate_and_options_replace() {
        let s = ok("config t\nlist l a\noption o 1\nlist l b\noption o 2\noption x y\noption x ''\nlist m 1\noption m 2\n");
        let v = |n| s[0].get(n).map(|o| o.value.clone());
        assert_eq!(v("l"), Some(Value::List(vec!["a".into(), "b".into()])));
        assert_eq!(v("o"), Some(Value::Single("2".into())));
        assert_eq!(s[0].get("o").map(|o| o.line), Some(5));
        assert_eq!(v("x"), None);
        assert_eq!(v("m"), Some(Value::Single("2".into())));
        let s = ok("config t\noption l a\nlist l b\n");
        assert_eq!(
            s[0].get("l").map(|o| o.value.clone()),
            Some(Value::List(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn syntax_errors_are_all_collected() {
        let e = err("option a 1\nconfig t n\noption a\noption b 1 2\nfrob x\noption 'b c' 1\nconfig t 'a-b'\noption z 1\nconfig\nconfig t n\noption c \"x\n");
        assert_eq!(
            e,
            [
                "t:1: 'option' before the first 'config' line",
                "t:3: section 'n' option 'a' has no value",
                "t:4: section 'n' option 'b' unexpected '2' after the value (quote values that contain spaces)",
                "t:5: unknown command 'frob' (expected config, option or list)",
                "t:6: section 'n' invalid option name 'b c': use only letters, digits and _",
                "t:7: invalid section name 'a-b': use only letters, digits and _",
                "t:9: 'config' needs a section type",
                "t:11: section 'n' unterminated \" quote",
            ]
        );
        assert_eq!(
            err("config t\noption a 'x")[0],
            "t:2: section '@t[0]' unterminated ' quote"
        );
    }

    #[test]
    fn control_characters_are_escaped_in_errors() {
        assert_eq!(
            err("\u{feff}config t\n")[0],
            "t:1: unknown command '\\u{feff}config' (expected config, option or list)"
        );
        assert_eq!(err("c t\no a 'x\ty' z\n")[0], "t:2: section '@t[0]' option 'a' unexpected 'z' after the value (quote values that contain spaces)");
        assert_eq!(err("c t\no a x 'y\tz'\n")[0], "t:2: section '@t[0]' option 'a' unexpected 'y\\tz' after the value (quote values that contain spaces)");
    }

    #[test]
    fn odd_bytes_do_not_panic() {
        for text in [
            "\\",
            "'",
            "\"\\",
            "config\\",
            "c t\no a \"\\\r",
            "\u{feff}config é 'ü'",
            "c t\nl a \\\r\n",
        ] {
            let _ = parse("t", text);
        }
    }
}
