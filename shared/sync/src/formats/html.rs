//! Plain text as the HTML HubSpot stores in `hs_note_body` and `hs_task_body`.
//!
//! HubSpot renders these bodies as HTML (the API answers task bodies such as
//! `<div dir="auto">…<br></div>`), so plain text sent as-is loses its line breaks and any `<`
//! or `&` in it is read as markup. Each paragraph becomes `<p>`, each line break inside one
//! `<br>`, and `& < > " '` are escaped. A body longer than the limit is cut between whole
//! characters and tags — never inside `&amp;` or `<br>` — its open tags closed, and a visible
//! marker says how much is missing and where the whole text is.

/// One piece of the document, rendered atomically.
enum Token {
    /// An element's opening tags and the matching closing tags.
    Open(&'static str, &'static str),
    Close,
    Char(char),
    Br,
}

/// `title` (bold, its own paragraph; skipped when blank) and `text` as HTML of at most `limit`
/// UTF-16 code units — HubSpot counts Java characters. `whole_in` ends the truncation marker
/// (e.g. `"full note in Attio"`). `limit` should leave room for the marker (about 100).
pub fn html_body(title: &str, text: &str, limit: usize, whole_in: &str) -> String {
    let tokens = tokenize(title, text);
    let full: String = {
        let mut stack = Vec::new();
        tokens.iter().map(|t| piece(t, &mut stack)).collect()
    };
    if utf16_len(&full) <= limit {
        return full;
    }
    let total = tokens
        .iter()
        .filter(|t| matches!(t, Token::Char(_)))
        .count();
    // Room for the longest marker this body can need (every character missing).
    let budget = limit.saturating_sub(utf16_len(&marker(total, whole_in)));

    let mut out = String::new();
    let mut used = 0;
    let mut stack: Vec<&'static str> = Vec::new();
    let mut closers = 0;
    let mut shown = 0;
    for token in &tokens {
        let closers_after = match token {
            Token::Open(_, close) => closers + utf16_len(close),
            Token::Close => closers - stack.last().map_or(0, |c| utf16_len(c)),
            Token::Char(_) | Token::Br => closers,
        };
        let mut trial = stack.clone();
        let text = piece(token, &mut trial);
        let len = utf16_len(&text);
        if used + len + closers_after > budget {
            break;
        }
        out.push_str(&text);
        used += len;
        stack = trial;
        closers = closers_after;
        shown += usize::from(matches!(token, Token::Char(_)));
    }
    while let Some(close) = stack.pop() {
        out.push_str(close);
    }
    out.push_str(&marker(total - shown, whole_in));
    out
}

/// The notice that ends a truncated body.
fn marker(missing: usize, whole_in: &str) -> String {
    format!("<p>… [truncated: {missing} characters not shown; {whole_in}]</p>")
}

/// Renders one token, keeping the stack of open elements' closing tags.
fn piece(token: &Token, stack: &mut Vec<&'static str>) -> String {
    match token {
        Token::Open(open, close) => {
            stack.push(close);
            (*open).to_owned()
        }
        Token::Close => stack.pop().unwrap_or_default().to_owned(),
        Token::Br => "<br>".to_owned(),
        Token::Char(c) => match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        },
    }
}

/// The title's paragraph, then one paragraph per run of non-blank lines.
fn tokenize(title: &str, text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let title = title.trim();
    if !title.is_empty() {
        tokens.push(Token::Open("<p><strong>", "</strong></p>"));
        push_lines(&mut tokens, title.lines());
        tokens.push(Token::Close);
    }
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut paragraph: Vec<&str> = Vec::new();
    for line in text.split('\n').chain([""]) {
        if line.trim().is_empty() {
            if !paragraph.is_empty() {
                tokens.push(Token::Open("<p>", "</p>"));
                push_lines(&mut tokens, paragraph.drain(..));
                tokens.push(Token::Close);
            }
        } else {
            paragraph.push(line);
        }
    }
    tokens
}

fn push_lines<'a>(tokens: &mut Vec<Token>, lines: impl Iterator<Item = &'a str>) {
    for (i, line) in lines.enumerate() {
        if i > 0 {
            tokens.push(Token::Br);
        }
        // Control characters other than tabs have no place in HTML text; they are dropped.
        let kept = line.chars().filter(|c| *c == '\t' || !c.is_control());
        tokens.extend(kept.map(Token::Char));
    }
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}
