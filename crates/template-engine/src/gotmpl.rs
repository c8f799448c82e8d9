//! Go `text/template` → Tera translation, so procedure templates written for the original operator keep working.
//!
//! The translator parses the Go syntax the original's scripts and chart used (`{{ .A.b }}`, `{{- -}}`,
//! `if/else if/else/end`, `range $k, $v := X`, `with`, `$var :=`, pipelines `x | f a`, parentheses, comments)
//! and emits an equivalent Tera template:
//! - literal text is copied verbatim; when it contains `{` it is wrapped in `{% raw %}` so bash such as
//!   `${#ARR[@]}` or `{% ... %}`-looking text is never interpreted by Tera;
//! - whitespace trimming is applied here (Go semantics: all adjacent spaces, tabs and newlines);
//! - field chains become Tera paths (`.Params.password` → `Params.password`), relative to the current dot;
//! - every Go function call becomes a Tera function call `go_<name>(a0=.., a1=.., at="line:col")`, so nesting
//!   and pipelines compose uniformly and function errors can name the position in the ORIGINAL source.
//!
//! Each field reference is recorded with its original position, so a "Variable not found" from Tera is mapped
//! back to the user's line and column.

use std::fmt::Write as _;

/// Context key holding the whole variables, for templates that use the root dot as a value
/// (`range $k, $v := .` at the top level); only added when a template needs it.
pub(crate) const ROOT_VAR: &str = "__root";

/// Functions a Go template may call (Go built-ins, the sprig subset the original chart used, and helpers).
pub(crate) const FUNCTIONS: &[&str] = &[
    "and",
    "b64dec",
    "b64enc",
    "contains",
    "default",
    "empty",
    "eq",
    "ge",
    "gt",
    "hasPrefix",
    "hasSuffix",
    "index",
    "indent",
    "le",
    "len",
    "lower",
    "lt",
    "ne",
    "nindent",
    "not",
    "or",
    "print",
    "println",
    "quote",
    "replace",
    "required",
    "shell_quote",
    "squote",
    "toString",
    "toYaml",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "trunc",
    "upper",
];

/// A field reference in the original source, for mapping Tera's "Variable `x` not found" back to it.
#[derive(Debug, Clone)]
pub(crate) struct VarRef {
    /// The Tera path this reference was translated to (e.g. `Params.password`, `__r1.1.name`).
    pub tera_path: String,
    /// The path in the variables when the reference is rooted there (`["Params", "password"]`).
    pub vars_path: Option<Vec<String>>,
    /// The expression as the user wrote it (`.Params.password`).
    pub go_text: String,
    /// Byte offset in the source of each segment's leading `.` (one per segment of `vars_path`/the chain).
    pub segment_offsets: Vec<usize>,
    /// Byte offset of the whole reference.
    pub offset: usize,
}

/// Result of translating one Go template.
#[derive(Debug, Clone)]
pub(crate) struct Translation {
    /// Tera source.
    pub tera: String,
    /// Field references, in source order.
    pub refs: Vec<VarRef>,
    /// The template uses the root dot as a value, so the render context needs [`ROOT_VAR`].
    pub needs_root: bool,
}

/// A translation error: byte offset in the source and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        offset,
        message: message.into(),
    })
}

// ---------------------------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A lone `.`.
    Dot,
    /// `.Name`.
    Field(String),
    /// `$name`; `$` alone has an empty name.
    Var(String),
    Ident(String),
    Str(String),
    Num(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
    /// Whitespace separates this token from the previous one.
    spaced: bool,
}

/// One `{{ ... }}` action: its tokens and where it starts.
#[derive(Debug)]
struct Action {
    tokens: Vec<Token>,
    pos: usize,
}

#[derive(Debug)]
enum Piece {
    Text(String),
    Action(Action),
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits the source into literal text and actions, applying `{{-`/`-}}` trimming and dropping comments.
fn split(src: &str) -> Result<Vec<Piece>, SyntaxError> {
    let bytes = src.as_bytes();
    let mut pieces: Vec<Piece> = Vec::new();
    let mut i = 0;
    let mut trim_next_text = false;
    while i < bytes.len() {
        let open = src[i..].find("{{").map(|p| p + i);
        let text_end = open.unwrap_or(bytes.len());
        let mut text = &src[i..text_end];
        if trim_next_text {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            trim_next_text = false;
        }
        let Some(open) = open else {
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_string()));
            }
            break;
        };
        let mut inner_start = open + 2;
        // Go: "{{- " trims; "{{-3}}" is the number -3.
        let left_trim =
            bytes.get(open + 2) == Some(&b'-') && bytes.get(open + 3).is_some_and(|c| is_space(*c));
        if left_trim {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            inner_start = open + 3;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_string()));
        }
        // Comment: {{/* ... */}} (optionally with trim markers).
        let after_ws = skip_ws(bytes, inner_start);
        if src[after_ws..].starts_with("/*") {
            let Some(close) = src[after_ws + 2..].find("*/") else {
                return err(open, "unclosed comment: add */}} to end it");
            };
            let mut j = after_ws + 2 + close + 2;
            let ws_end = skip_ws(bytes, j);
            let right_trim =
                src[ws_end..].starts_with("-}}") && ws_end > j && is_space(bytes[ws_end - 1]);
            if right_trim {
                j = ws_end + 3;
                trim_next_text = true;
            } else if src[j..].starts_with("}}") {
                j += 2;
            } else {
                return err(
                    open,
                    "a comment must end with */}} (nothing between */ and }})",
                );
            }
            i = j;
            continue;
        }
        let (tokens, end, right_trim) = lex_action(src, inner_start, open)?;
        pieces.push(Piece::Action(Action { tokens, pos: open }));
        trim_next_text = right_trim;
        i = end;
    }
    Ok(pieces)
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_space(bytes[i]) {
        i += 1;
    }
    i
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Lexes one action from `start` (just after `{{` / `{{- `); returns the tokens, the offset after `}}` and
/// whether it ended with ` -}}`.
fn lex_action(
    src: &str,
    start: usize,
    open: usize,
) -> Result<(Vec<Token>, usize, bool), SyntaxError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = start;
    let mut spaced = true;
    loop {
        if i >= bytes.len() {
            return err(open, "unclosed action: add }} to end it");
        }
        let c = bytes[i];
        if is_space(c) {
            // " -}}" ends the action with right trimming.
            let j = skip_ws(bytes, i);
            if src[j..].starts_with("-}}") {
                return Ok((tokens, j + 3, true));
            }
            i = j;
            spaced = true;
            continue;
        }
        if src[i..].starts_with("}}") {
            return Ok((tokens, i + 2, false));
        }
        let pos = i;
        let rest = &src[i..];
        let ch = rest.chars().next().unwrap_or(' ');
        let tok = if c == b'.' {
            let name: String = rest[1..]
                .chars()
                .take_while(|c| is_ident_char(*c))
                .collect();
            if name.is_empty() {
                i += 1;
                Tok::Dot
            } else if !is_ident_start(name.chars().next().unwrap_or('0')) {
                return err(
                    pos,
                    format!("unexpected number after '.': {name:?} is not a field name"),
                );
            } else {
                i += 1 + name.len();
                Tok::Field(name)
            }
        } else if c == b'$' {
            let name: String = rest[1..]
                .chars()
                .take_while(|c| is_ident_char(*c))
                .collect();
            i += 1 + name.len();
            Tok::Var(name)
        } else if c == b'"' {
            let (val, len) = lex_string(rest).ok_or_else(|| SyntaxError {
                offset: pos,
                message: "unterminated or invalid string literal".into(),
            })?;
            i += len;
            Tok::Str(val)
        } else if c == b'`' {
            let Some(close) = rest[1..].find('`') else {
                return err(pos, "unterminated raw string literal (missing closing `)");
            };
            i += close + 2;
            Tok::Str(rest[1..close + 1].to_string())
        } else if c.is_ascii_digit()
            || ((c == b'-' || c == b'+') && rest.len() > 1 && rest.as_bytes()[1].is_ascii_digit())
        {
            let len = 1 + rest[1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                .count();
            let text = &rest[..len];
            i += len;
            Tok::Num(text.to_string())
        } else if is_ident_start(ch) {
            let name: String = rest.chars().take_while(|c| is_ident_char(*c)).collect();
            i += name.len();
            Tok::Ident(name)
        } else if c == b'|' {
            i += 1;
            Tok::Pipe
        } else if c == b'(' {
            i += 1;
            Tok::LParen
        } else if c == b')' {
            i += 1;
            Tok::RParen
        } else if rest.starts_with(":=") {
            i += 2;
            Tok::Declare
        } else if c == b'=' {
            i += 1;
            Tok::Assign
        } else if c == b',' {
            i += 1;
            Tok::Comma
        } else {
            return err(
                pos,
                format!("unexpected character {ch:?} in action (Go template syntax)"),
            );
        };
        tokens.push(Token { tok, pos, spaced });
        spaced = false;
    }
}

/// A Go interpreted string literal: returns the value and its length in the source.
fn lex_string(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((idx, c)) = chars.next() {
        match c {
            '"' => return Some((out, idx + 1)),
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut hex = String::new();
                        for _ in 0..n {
                            hex.push(chars.next()?.1);
                        }
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone)]
enum Base {
    /// `.` (the current dot).
    Dot,
    /// `$` (the root).
    Root,
    /// `$name`.
    Var(String),
    /// `( pipeline )`.
    Sub(Box<Pipeline>),
}

#[derive(Debug, Clone)]
enum Arg {
    /// A field chain (possibly empty) on a base: `.`, `.A.b`, `$x.a`, `(pipe).a`.
    Chain {
        base: Base,
        fields: Vec<(String, usize)>,
        pos: usize,
    },
    Str(String),
    Num(String, usize),
    Bool(bool),
    Nil(usize),
    Func(String, usize),
}

#[derive(Debug, Clone)]
struct Command {
    args: Vec<Arg>,
    pos: usize,
}

#[derive(Debug, Clone)]
struct Pipeline {
    /// `$a, $b :=` (or `=` when `assign` is true).
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Command>,
    pos: usize,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Print(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Option<Vec<Node>>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Option<Vec<Node>>,
    },
    Break,
    Continue,
}

struct TokStream<'a> {
    toks: &'a [Token],
    i: usize,
    end_pos: usize,
}

impl TokStream<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }
    fn pos(&self) -> usize {
        self.peek().map(|t| t.pos).unwrap_or(self.end_pos)
    }
}

fn parse_pipeline(ts: &mut TokStream, in_parens: bool) -> Result<Pipeline, SyntaxError> {
    let pos = ts.pos();
    let mut decl = Vec::new();
    let mut assign = false;
    // Declarations: `$x :=`, `$x =`, `$k, $v :=`.
    let save = ts.i;
    let mut names = Vec::new();
    loop {
        match ts.peek().map(|t| t.tok.clone()) {
            Some(Tok::Var(name)) if !name.is_empty() => {
                names.push(name);
                ts.i += 1;
                match ts.peek().map(|t| t.tok.clone()) {
                    Some(Tok::Comma) => {
                        ts.i += 1;
                        continue;
                    }
                    Some(Tok::Declare) => {
                        ts.i += 1;
                        decl = names;
                        break;
                    }
                    Some(Tok::Assign) => {
                        ts.i += 1;
                        decl = names;
                        assign = true;
                        break;
                    }
                    _ => {
                        ts.i = save;
                        break;
                    }
                }
            }
            _ => {
                ts.i = save;
                break;
            }
        }
    }
    let mut cmds = Vec::new();
    loop {
        let cmd = parse_command(ts, in_parens)?;
        cmds.push(cmd);
        match ts.peek().map(|t| &t.tok) {
            Some(Tok::Pipe) => {
                ts.i += 1;
            }
            _ => break,
        }
    }
    Ok(Pipeline {
        decl,
        assign,
        cmds,
        pos,
    })
}

fn parse_command(ts: &mut TokStream, in_parens: bool) -> Result<Command, SyntaxError> {
    let pos = ts.pos();
    let mut args = Vec::new();
    while let Some(t) = ts.peek().cloned() {
        match t.tok {
            Tok::Pipe => break,
            Tok::RParen if in_parens => break,
            Tok::RParen => return err(t.pos, "unexpected ')' without a matching '('"),
            Tok::Comma | Tok::Declare | Tok::Assign => {
                return err(
                    t.pos,
                    "unexpected ',', ':=' or '=': a variable declaration must come first, as in {{ $x := .Params.a }}",
                );
            }
            _ => {}
        }
        if !args.is_empty() && !t.spaced && !matches!(t.tok, Tok::LParen) {
            return err(t.pos, "missing space between arguments");
        }
        ts.i += 1;
        let arg = match t.tok {
            Tok::Dot => chain(ts, Base::Dot, Vec::new(), t.pos),
            Tok::Field(name) => chain(ts, Base::Dot, vec![(name, t.pos)], t.pos),
            Tok::Var(name) => {
                let base = if name.is_empty() {
                    Base::Root
                } else {
                    Base::Var(name)
                };
                chain(ts, base, Vec::new(), t.pos)
            }
            Tok::LParen => {
                let inner = parse_pipeline(ts, true)?;
                match ts.peek().map(|t| &t.tok) {
                    Some(Tok::RParen) => ts.i += 1,
                    _ => return err(t.pos, "unclosed '(': add ')'"),
                }
                chain(ts, Base::Sub(Box::new(inner)), Vec::new(), t.pos)
            }
            Tok::Str(s) => Arg::Str(s),
            Tok::Num(n) => Arg::Num(n, t.pos),
            Tok::Ident(name) => match name.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil(t.pos),
                _ => Arg::Func(name, t.pos),
            },
            _ => return err(t.pos, "unexpected token"),
        };
        args.push(arg);
    }
    if args.is_empty() {
        return err(
            pos,
            "missing value for command (an empty pipeline or a trailing '|')",
        );
    }
    Ok(Command { args, pos })
}

fn chain(ts: &mut TokStream, base: Base, mut fields: Vec<(String, usize)>, pos: usize) -> Arg {
    while let Some(Token {
        tok: Tok::Field(name),
        pos,
        spaced: false,
    }) = ts.peek().cloned()
    {
        fields.push((name, pos));
        ts.i += 1;
    }
    Arg::Chain { base, fields, pos }
}

enum Frame {
    Root,
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
        pos: usize,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Option<Vec<Node>>,
        pos: usize,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Option<Vec<Node>>,
        pos: usize,
        /// `else with` chains close together with their parent.
        chained: bool,
    },
}

fn parse(src: &str) -> Result<Vec<Node>, SyntaxError> {
    let pieces = split(src)?;
    // Stack of (frame, nodes being collected for its current branch).
    let mut stack: Vec<(Frame, Vec<Node>)> = vec![(Frame::Root, Vec::new())];
    for piece in pieces {
        let action = match piece {
            Piece::Text(t) => {
                stack.last_mut().expect("root").1.push(Node::Text(t));
                continue;
            }
            Piece::Action(a) => a,
        };
        let end_pos = action.pos;
        let toks = &action.tokens;
        let keyword = match toks.first().map(|t| &t.tok) {
            Some(Tok::Ident(k)) => k.as_str(),
            None => return err(action.pos, "empty action {{ }}"),
            _ => "",
        };
        let mut ts = TokStream {
            toks,
            i: 1,
            end_pos,
        };
        let rest_pipeline = |ts: &mut TokStream| -> Result<Pipeline, SyntaxError> {
            if ts.peek().is_none() {
                return err(action.pos, format!("missing condition after {keyword:?}"));
            }
            let p = parse_pipeline(ts, false)?;
            if let Some(t) = ts.peek() {
                return err(t.pos, "unexpected token after the pipeline");
            }
            Ok(p)
        };
        match keyword {
            "if" => {
                let p = rest_pipeline(&mut ts)?;
                stack.push((
                    Frame::If {
                        branches: vec![(p, Vec::new())],
                        otherwise: None,
                        pos: action.pos,
                    },
                    Vec::new(),
                ));
            }
            "range" => {
                let p = rest_pipeline(&mut ts)?;
                if p.decl.len() > 2 || p.assign {
                    return err(
                        action.pos,
                        "range takes at most two variables: {{ range $k, $v := .X }}",
                    );
                }
                stack.push((
                    Frame::Range {
                        pipe: p,
                        body: Vec::new(),
                        otherwise: None,
                        pos: action.pos,
                    },
                    Vec::new(),
                ));
            }
            "with" => {
                let p = rest_pipeline(&mut ts)?;
                stack.push((
                    Frame::With {
                        pipe: p,
                        body: Vec::new(),
                        otherwise: None,
                        pos: action.pos,
                        chained: false,
                    },
                    Vec::new(),
                ));
            }
            "else" => {
                let (frame, nodes) = stack.pop().expect("root");
                let sub = match ts.peek().map(|t| &t.tok) {
                    Some(Tok::Ident(k)) if k == "if" || k == "with" => {
                        let k = k.clone();
                        ts.i += 1;
                        Some((k, rest_pipeline(&mut ts)?))
                    }
                    Some(_) => {
                        return err(
                            action.pos,
                            "{{ else }} takes no arguments (except else if / else with)",
                        );
                    }
                    None => None,
                };
                match (frame, sub) {
                    (
                        Frame::If {
                            mut branches,
                            otherwise: None,
                            pos,
                        },
                        sub,
                    ) => {
                        branches.last_mut().expect("branch").1 = nodes;
                        match sub {
                            Some((k, p)) if k == "if" => {
                                branches.push((p, Vec::new()));
                                stack.push((
                                    Frame::If {
                                        branches,
                                        otherwise: None,
                                        pos,
                                    },
                                    Vec::new(),
                                ));
                            }
                            Some((_, p)) => {
                                // `else with` inside an if: the with becomes the else branch.
                                stack.push((
                                    Frame::If {
                                        branches,
                                        otherwise: Some(Vec::new()),
                                        pos,
                                    },
                                    Vec::new(),
                                ));
                                stack.push((
                                    Frame::With {
                                        pipe: p,
                                        body: Vec::new(),
                                        otherwise: None,
                                        pos,
                                        chained: true,
                                    },
                                    Vec::new(),
                                ));
                            }
                            None => stack.push((
                                Frame::If {
                                    branches,
                                    otherwise: Some(Vec::new()),
                                    pos,
                                },
                                Vec::new(),
                            )),
                        }
                    }
                    (
                        Frame::Range {
                            pipe,
                            otherwise: None,
                            pos,
                            ..
                        },
                        None,
                    ) => stack.push((
                        Frame::Range {
                            pipe,
                            body: nodes,
                            otherwise: Some(Vec::new()),
                            pos,
                        },
                        Vec::new(),
                    )),
                    (
                        Frame::With {
                            pipe,
                            otherwise: None,
                            pos,
                            chained,
                            ..
                        },
                        sub,
                    ) => {
                        stack.push((
                            Frame::With {
                                pipe,
                                body: nodes,
                                otherwise: Some(Vec::new()),
                                pos,
                                chained,
                            },
                            Vec::new(),
                        ));
                        match sub {
                            None => {}
                            Some((k, p)) => {
                                let frame = if k == "with" {
                                    Frame::With {
                                        pipe: p,
                                        body: Vec::new(),
                                        otherwise: None,
                                        pos: action.pos,
                                        chained: true,
                                    }
                                } else {
                                    return err(
                                        action.pos,
                                        "{{ else if }} inside {{ with }} is not supported: nest an {{ if }} in the else branch",
                                    );
                                };
                                stack.push((frame, Vec::new()));
                            }
                        }
                    }
                    _ => {
                        return err(
                            action.pos,
                            "{{ else }} without a matching {{ if }}, {{ range }} or {{ with }}, or a second {{ else }}",
                        );
                    }
                }
            }
            "end" => {
                if ts.peek().is_some() {
                    return err(action.pos, "{{ end }} takes no arguments");
                }
                close_frame(&mut stack, action.pos)?;
            }
            "break" | "continue" => {
                if !stack.iter().any(|(f, _)| matches!(f, Frame::Range { .. })) {
                    return err(
                        action.pos,
                        format!("{{{{ {keyword} }}}} outside of {{{{ range }}}}"),
                    );
                }
                stack
                    .last_mut()
                    .expect("root")
                    .1
                    .push(if keyword == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
            }
            "define" | "template" | "block" => {
                return err(
                    action.pos,
                    format!(
                        "{{{{ {keyword} }}}} is not supported in procedure templates: inline the text instead"
                    ),
                );
            }
            _ => {
                let mut ts = TokStream {
                    toks,
                    i: 0,
                    end_pos,
                };
                let p = parse_pipeline(&mut ts, false)?;
                if let Some(t) = ts.peek() {
                    return err(t.pos, "unexpected token (an unmatched ')'?)");
                }
                stack.last_mut().expect("root").1.push(Node::Print(p));
            }
        }
    }
    if stack.len() > 1 {
        let pos = match &stack.last().expect("frame").0 {
            Frame::If { pos, .. } | Frame::Range { pos, .. } | Frame::With { pos, .. } => *pos,
            Frame::Root => 0,
        };
        return err(pos, "unclosed block: add {{ end }}");
    }
    Ok(stack.pop().expect("root").1)
}

/// Closes the innermost block on `{{ end }}` (and any `else with` blocks chained to it).
fn close_frame(stack: &mut Vec<(Frame, Vec<Node>)>, pos: usize) -> Result<(), SyntaxError> {
    loop {
        if stack.len() < 2 {
            return err(
                pos,
                "{{ end }} without a matching {{ if }}, {{ range }} or {{ with }}",
            );
        }
        let (frame, nodes) = stack.pop().expect("frame");
        let (node, chained) = match frame {
            Frame::Root => unreachable!("root is never popped here"),
            Frame::If {
                mut branches,
                otherwise,
                ..
            } => {
                let otherwise = match otherwise {
                    Some(_) => Some(nodes),
                    None => {
                        branches.last_mut().expect("branch").1 = nodes;
                        None
                    }
                };
                (
                    Node::If {
                        branches,
                        otherwise,
                    },
                    false,
                )
            }
            Frame::Range {
                pipe,
                body,
                otherwise,
                ..
            } => {
                let (body, otherwise) = match otherwise {
                    Some(_) => (body, Some(nodes)),
                    None => (nodes, None),
                };
                (
                    Node::Range {
                        pipe,
                        body,
                        otherwise,
                    },
                    false,
                )
            }
            Frame::With {
                pipe,
                body,
                otherwise,
                chained,
                ..
            } => {
                let (body, otherwise) = match otherwise {
                    Some(_) => (body, Some(nodes)),
                    None => (nodes, None),
                };
                (
                    Node::With {
                        pipe,
                        body,
                        otherwise,
                    },
                    chained,
                )
            }
        };
        stack.last_mut().expect("parent").1.push(node);
        if !chained {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Translation

/// A Tera path and, when rooted in the variables, the vars path it denotes.
type PathRef = (String, Option<Vec<String>>);

#[derive(Clone)]
enum Dot {
    Root,
    /// A Tera path, and the vars path it denotes when rooted in the variables.
    Path(String, Option<Vec<String>>),
}

struct Translator<'s> {
    src: &'s str,
    line_starts: Vec<usize>,
    out: String,
    refs: Vec<VarRef>,
    counter: usize,
    loop_depth: usize,
    needs_root: bool,
}

/// Translates Go-template source to Tera.
pub(crate) fn translate(src: &str) -> Result<Translation, SyntaxError> {
    let nodes = parse(src)?;
    let mut t = Translator {
        src,
        line_starts: line_starts(src),
        out: String::with_capacity(src.len() + src.len() / 2),
        refs: Vec::new(),
        counter: 0,
        loop_depth: 0,
        needs_root: false,
    };
    t.nodes(&nodes, &Dot::Root)?;
    Ok(Translation {
        tera: t.out,
        refs: t.refs,
        needs_root: t.needs_root,
    })
}

/// Byte offsets where each line starts.
pub(crate) fn line_starts(src: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(src.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// 1-based (line, column in characters) of a byte offset.
pub(crate) fn line_col(src: &str, starts: &[usize], offset: usize) -> (usize, usize) {
    let line = match starts.binary_search(&offset) {
        Ok(i) => i,
        Err(i) => i - 1,
    };
    let col = src[starts[line]..offset.min(src.len())].chars().count() + 1;
    (line + 1, col)
}

/// Emits literal text so that Tera outputs it verbatim.
pub(crate) fn push_literal(out: &mut String, text: &str) {
    if !text.contains('{') {
        out.push_str(text);
        return;
    }
    out.push_str("{% raw %}");
    // `endraw` inside raw text would end the block early: split the word across two raw blocks.
    out.push_str(&text.replace("endraw", "end{% endraw %}{% raw %}raw"));
    out.push_str("{% endraw %}");
}

/// A Tera string literal with the given value (Tera strings have no escapes: pick a free quote character).
fn tera_string(s: &str, pos: usize) -> Result<String, SyntaxError> {
    for q in ['"', '\'', '`'] {
        if !s.contains(q) {
            return Ok(format!("{q}{s}{q}"));
        }
    }
    err(
        pos,
        "a string literal containing all of \", ' and ` is not supported: split it and join with print",
    )
}

fn tera_var(name: &str) -> String {
    format!("gv_{name}")
}

impl Translator<'_> {
    fn at(&self, pos: usize) -> String {
        let (l, c) = line_col(self.src, &self.line_starts, pos);
        format!("at=\"{l}:{c}\"")
    }

    fn nodes(&mut self, nodes: &[Node], dot: &Dot) -> Result<(), SyntaxError> {
        for node in nodes {
            self.node(node, dot)?;
        }
        Ok(())
    }

    fn node(&mut self, node: &Node, dot: &Dot) -> Result<(), SyntaxError> {
        match node {
            Node::Text(t) => push_literal(&mut self.out, t),
            Node::Break => self.out.push_str("{% break %}"),
            Node::Continue => self.out.push_str("{% continue %}"),
            Node::Print(p) => {
                if p.decl.is_empty() {
                    let e = self.pipeline(p, dot)?;
                    let _ = write!(self.out, "{{{{ {e} }}}}");
                } else {
                    if p.decl.len() != 1 {
                        return err(p.pos, "only one variable can be declared outside range");
                    }
                    let e = self.pipeline(p, dot)?;
                    let tag = if p.assign && self.loop_depth > 0 {
                        "set_global"
                    } else {
                        "set"
                    };
                    let _ = write!(self.out, "{{% {tag} {} = {e} %}}", tera_var(&p.decl[0]));
                }
            }
            Node::If {
                branches,
                otherwise,
            } => {
                for (i, (cond, body)) in branches.iter().enumerate() {
                    let c = self.condition(cond, dot)?;
                    let tag = if i == 0 { "if" } else { "elif" };
                    let _ = write!(self.out, "{{% {tag} {c} %}}");
                    self.nodes(body, dot)?;
                }
                if let Some(o) = otherwise {
                    self.out.push_str("{% else %}");
                    self.nodes(o, dot)?;
                }
                self.out.push_str("{% endif %}");
            }
            Node::With {
                pipe,
                body,
                otherwise,
            } => {
                if !pipe.decl.is_empty() {
                    return err(
                        pipe.pos,
                        "variable declarations in {{ with }} are not supported: declare the variable before",
                    );
                }
                let (cond, inner) = match self.plain_path(pipe, dot)? {
                    Some((path, vars_path)) => (path.clone(), Dot::Path(path, vars_path)),
                    None => {
                        self.counter += 1;
                        let name = format!("__w{}", self.counter);
                        let e = self.pipeline(pipe, dot)?;
                        let cond = format!("go_truth(a0={e})");
                        // Evaluate once into a variable so `.` inside refers to the value.
                        let _ = write!(self.out, "{{% set {name} = {e} %}}");
                        (cond, Dot::Path(name, None))
                    }
                };
                let _ = write!(self.out, "{{% if {cond} %}}");
                self.nodes(body, &inner)?;
                if let Some(o) = otherwise {
                    self.out.push_str("{% else %}");
                    self.nodes(o, dot)?;
                }
                self.out.push_str("{% endif %}");
            }
            Node::Range {
                pipe,
                body,
                otherwise,
            } => {
                let mut items = pipe.clone();
                items.decl.clear();
                let e = self.pipeline(&items, dot)?;
                self.counter += 1;
                let item = format!("__r{}", self.counter);
                if otherwise.is_some() {
                    let _ = write!(self.out, "{{% if go_truth(a0={e}) %}}");
                }
                let _ = write!(
                    self.out,
                    "{{% for {item} in go_pairs(a0={e}, {}) %}}",
                    self.at(pipe.pos)
                );
                match pipe.decl.as_slice() {
                    [] => {}
                    [v] => {
                        let _ = write!(self.out, "{{% set {} = {item}.1 %}}", tera_var(v));
                    }
                    [k, v] => {
                        let _ = write!(
                            self.out,
                            "{{% set {} = {item}.0 %}}{{% set {} = {item}.1 %}}",
                            tera_var(k),
                            tera_var(v)
                        );
                    }
                    _ => return err(pipe.pos, "range takes at most two variables"),
                }
                self.loop_depth += 1;
                self.nodes(body, &Dot::Path(format!("{item}.1"), None))?;
                self.loop_depth -= 1;
                self.out.push_str("{% endfor %}");
                if let Some(o) = otherwise {
                    self.out.push_str("{% else %}");
                    self.nodes(o, dot)?;
                    self.out.push_str("{% endif %}");
                }
            }
        }
        Ok(())
    }

    /// When the pipeline is a single field chain, its Tera path (and vars path).
    fn plain_path(&mut self, p: &Pipeline, dot: &Dot) -> Result<Option<PathRef>, SyntaxError> {
        if p.cmds.len() != 1 || p.cmds[0].args.len() != 1 {
            return Ok(None);
        }
        match &p.cmds[0].args[0] {
            Arg::Chain { base, fields, pos } if !matches!(base, Base::Sub(_)) => {
                let (path, vars_path) = self.chain_path(base, fields, *pos, dot)?;
                if path == ROOT_VAR {
                    return Ok(None);
                }
                Ok(Some((path, vars_path)))
            }
            _ => Ok(None),
        }
    }

    /// A condition for `if`/`elif`: plain paths use Tera's truthiness (undefined is false, like an absent
    /// optional value); everything else goes through `go_truth` (Go truthiness: false, 0, nil, empty).
    fn condition(&mut self, p: &Pipeline, dot: &Dot) -> Result<String, SyntaxError> {
        if !p.decl.is_empty() {
            return err(
                p.pos,
                "variable declarations in {{ if }} are not supported: declare the variable before",
            );
        }
        if let Some((path, _)) = self.plain_path(p, dot)? {
            return Ok(path);
        }
        if p.cmds.len() == 1
            && p.cmds[0].args.len() == 2
            && matches!(&p.cmds[0].args[0], Arg::Func(f, _) if f == "not")
        {
            let inner = Pipeline {
                decl: Vec::new(),
                assign: false,
                cmds: vec![Command {
                    args: vec![p.cmds[0].args[1].clone()],
                    pos: p.pos,
                }],
                pos: p.pos,
            };
            if let Some((path, _)) = self.plain_path(&inner, dot)? {
                return Ok(format!("not {path}"));
            }
        }
        let e = self.pipeline(p, dot)?;
        Ok(format!("go_truth(a0={e})"))
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Dot) -> Result<String, SyntaxError> {
        let mut acc: Option<(String, bool)> = None;
        for cmd in &p.cmds {
            let plain = cmd.args.len() == 1 && is_plain_chain(&cmd.args[0]);
            acc = Some((self.command(cmd, acc, dot)?, plain));
        }
        Ok(acc.expect("a pipeline has at least one command").0)
    }

    fn command(
        &mut self,
        cmd: &Command,
        piped: Option<(String, bool)>,
        dot: &Dot,
    ) -> Result<String, SyntaxError> {
        match &cmd.args[0] {
            Arg::Func(name, pos) => {
                if !FUNCTIONS.contains(&name.as_str()) {
                    return err(
                        *pos,
                        format!(
                            "function {name:?} is not defined: supported functions are {}",
                            FUNCTIONS.join(", ")
                        ),
                    );
                }
                let mut args = Vec::new();
                let n = cmd.args.len() - 1 + usize::from(piped.is_some());
                for (i, a) in cmd.args[1..].iter().enumerate() {
                    let mut e = self.operand(a, dot)?;
                    // `default`'s value may be missing entirely: Tera's `default` filter tolerates that.
                    if name == "default" && i + 1 == n && is_plain_chain(a) {
                        e = format!("{e} | default(value=\"\")");
                    }
                    args.push(e);
                }
                if let Some((p, plain)) = piped {
                    args.push(if name == "default" && plain {
                        format!("{p} | default(value=\"\")")
                    } else {
                        p
                    });
                }
                let mut s = format!("go_{name}(");
                for (i, a) in args.iter().enumerate() {
                    let _ = write!(s, "a{i}={a}, ");
                }
                s.push_str(&self.at(*pos));
                s.push(')');
                Ok(s)
            }
            _ => {
                if cmd.args.len() > 1 {
                    return err(
                        cmd.pos,
                        "can't give arguments to a non-function: did you mean a function call?",
                    );
                }
                if piped.is_some() {
                    return err(
                        cmd.pos,
                        "can't pipe into a value: the right side of '|' must be a function",
                    );
                }
                self.operand(&cmd.args[0], dot)
            }
        }
    }

    fn operand(&mut self, a: &Arg, dot: &Dot) -> Result<String, SyntaxError> {
        match a {
            Arg::Str(s) => tera_string(s, 0),
            Arg::Num(n, pos) => {
                if n.parse::<i64>().is_ok() || n.parse::<f64>().is_ok_and(|f| f.is_finite()) {
                    Ok(n.trim_start_matches('+').to_string())
                } else {
                    err(
                        *pos,
                        format!("unsupported number literal {n:?}: use decimal digits"),
                    )
                }
            }
            Arg::Bool(b) => Ok(b.to_string()),
            Arg::Nil(pos) => err(*pos, "nil is not a command argument"),
            Arg::Func(name, pos) => {
                // A function used as an argument without parentheses is called with no arguments.
                let cmd = Command {
                    args: vec![Arg::Func(name.clone(), *pos)],
                    pos: *pos,
                };
                self.command(&cmd, None, dot)
            }
            Arg::Chain {
                base: Base::Sub(p),
                fields,
                pos,
            } => {
                let inner = self.pipeline(p, dot)?;
                if fields.is_empty() {
                    return Ok(inner);
                }
                let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
                let mut s = format!("go_index(a0={inner}");
                for (i, k) in names.iter().enumerate() {
                    let _ = write!(s, ", a{}=\"{k}\"", i + 1);
                }
                let _ = write!(s, ", {})", self.at(*pos));
                Ok(s)
            }
            Arg::Chain { base, fields, pos } => {
                let (path, _) = self.chain_path(base, fields, *pos, dot)?;
                Ok(path)
            }
        }
    }

    /// The Tera path of a field chain; records the reference for error mapping.
    fn chain_path(
        &mut self,
        base: &Base,
        fields: &[(String, usize)],
        pos: usize,
        dot: &Dot,
    ) -> Result<PathRef, SyntaxError> {
        let names: Vec<String> = fields.iter().map(|(f, _)| f.clone()).collect();
        let (prefix, prefix_vars): (Option<String>, Option<Vec<String>>) = match base {
            Base::Dot => match dot {
                Dot::Root => (None, Some(Vec::new())),
                Dot::Path(p, vp) => (Some(p.clone()), vp.clone()),
            },
            Base::Root => (None, Some(Vec::new())),
            Base::Var(v) => (Some(tera_var(v)), None),
            Base::Sub(_) => unreachable!("handled by operand"),
        };
        let path = match (&prefix, names.is_empty()) {
            (None, true) => {
                self.needs_root = true;
                ROOT_VAR.to_string()
            }
            (None, false) => names.join("."),
            (Some(p), true) => p.clone(),
            (Some(p), false) => format!("{p}.{}", names.join(".")),
        };
        let vars_path = prefix_vars.map(|mut v| {
            v.extend(names.iter().cloned());
            v
        });
        if !fields.is_empty() {
            let end = fields.last().map(|(f, p)| p + 1 + f.len()).unwrap_or(pos);
            self.refs.push(VarRef {
                tera_path: path.clone(),
                vars_path: vars_path.clone(),
                go_text: self.src[pos..end].to_string(),
                segment_offsets: fields.iter().map(|(_, p)| *p).collect(),
                offset: pos,
            });
        }
        Ok((path, vars_path))
    }
}

fn is_plain_chain(a: &Arg) -> bool {
    matches!(a, Arg::Chain { base, fields, .. } if !matches!(base, Base::Sub(_)) && !fields.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(src: &str) -> String {
        translate(src).expect("translates").tera
    }

    #[test]
    fn field_chains_lose_the_leading_dot() {
        assert_eq!(
            tr("a {{ .Params.password }} b"),
            "a {{ Params.password }} b"
        );
    }

    #[test]
    fn bash_braces_in_literal_text_are_wrapped_in_raw_blocks() {
        let t = tr("echo ${#ARR[@]} {% x %} $(date) {{ .A }}");
        assert_eq!(
            t,
            "{% raw %}echo ${#ARR[@]} {% x %} $(date) {% endraw %}{{ A }}"
        );
    }

    #[test]
    fn endraw_inside_literal_text_cannot_close_the_raw_block() {
        let t = tr("{% endraw %}");
        assert_eq!(t, "{% raw %}{% end{% endraw %}{% raw %}raw %}{% endraw %}");
    }

    #[test]
    fn trim_markers_remove_all_adjacent_whitespace() {
        assert_eq!(tr("a  \n {{- .X -}} \n\t b"), "a{{ X }}b");
        // "{{-3}}" is a number, not a trim marker.
        assert_eq!(tr("a {{-3}}"), "a {{ -3 }}");
    }

    #[test]
    fn comments_are_dropped() {
        assert_eq!(tr("a{{/* hi */}}b {{- /* x */ -}} c"), "abc");
    }

    #[test]
    fn if_else_if_else_end_becomes_if_elif_else_endif() {
        assert_eq!(
            tr("{{ if .A }}a{{ else if not .B }}b{{ else }}c{{ end }}"),
            "{% if A %}a{% elif not B %}b{% else %}c{% endif %}"
        );
    }

    #[test]
    fn eq_and_pipelines_become_function_calls_with_positions() {
        assert_eq!(
            tr("{{ if eq .Values.kindType \"CronJob\" }}x{{ end }}"),
            "{% if go_truth(a0=go_eq(a0=Values.kindType, a1=\"CronJob\", at=\"1:7\")) %}x{% endif %}"
        );
        assert_eq!(
            tr("{{ .S | nindent 8 }}"),
            "{{ go_nindent(a0=8, a1=S, at=\"1:9\") }}"
        );
    }

    #[test]
    fn range_with_key_and_value_sets_variables_and_dot() {
        let t = tr("{{ range $k, $v := .Env }}{{ $k }}={{ . }}{{ end }}");
        assert_eq!(
            t,
            "{% for __r1 in go_pairs(a0=Env, at=\"1:10\") %}{% set gv_k = __r1.0 %}{% set gv_v = __r1.1 %}{{ gv_k }}={{ __r1.1 }}{% endfor %}"
        );
    }

    #[test]
    fn with_on_a_field_chain_rebinds_dot() {
        assert_eq!(
            tr("{{ with .Params }}{{ .password }}{{ end }}"),
            "{% if Params %}{{ Params.password }}{% endif %}"
        );
        let t = translate("{{ with .Params }}{{ .password }}{{ end }}").unwrap();
        let r = t.refs.iter().find(|r| r.go_text == ".password").unwrap();
        assert_eq!(
            r.vars_path.as_deref(),
            Some(&["Params".to_string(), "password".to_string()][..])
        );
    }

    #[test]
    fn default_tolerates_a_missing_value() {
        assert_eq!(
            tr("{{ .P.port | default 5432 }}"),
            "{{ go_default(a0=5432, a1=P.port | default(value=\"\"), at=\"1:14\") }}"
        );
    }

    #[test]
    fn the_faq_reference_records_segment_positions() {
        let src = "l1\nl2\nl3\nl4\nl5\nl6\nCOMMAND=\"pgbr db backup --password '{{ .Params.password }}' --user\"";
        let t = translate(src).unwrap();
        let r = &t.refs[0];
        assert_eq!(r.go_text, ".Params.password");
        let starts = line_starts(src);
        // Go reports 7:46 (0-based column of `.password`); we report 1-based.
        assert_eq!(line_col(src, &starts, r.segment_offsets[1]), (7, 47));
    }

    #[test]
    fn syntax_errors_carry_the_offset() {
        for bad in [
            "{{ if .A }}",
            "{{ end }}",
            "{{ .A",
            "{{ printf \"%s\" .A }}",
            "{{ define \"x\" }}{{ end }}",
            "{{ else }}",
            "{{ .A .B }}",
            "{{ (.A }}",
            "{{ \"unterminated }}",
            "{{/* x }}",
            "{{ | }}",
        ] {
            assert!(translate(bad).is_err(), "{bad:?} should fail");
        }
        let e = translate("ok\n  {{ nope .A }}").unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(
            e.message.contains("\"nope\" is not defined"),
            "{}",
            e.message
        );
    }

    #[test]
    fn string_literals_pick_a_free_quote() {
        assert_eq!(tr(r#"{{ "a\"b" }}"#), "{{ 'a\"b' }}");
        assert_eq!(tr("{{ `x` }}"), "{{ \"x\" }}");
    }

    #[test]
    fn variables_and_root_references() {
        assert_eq!(
            tr("{{ $x := .A }}{{ with .B }}{{ $.C }}{{ $x }}{{ end }}"),
            "{% set gv_x = A %}{% if B %}{{ C }}{{ gv_x }}{% endif %}"
        );
    }
}
