//! A cookie-keeping HTTP "browser" for the end-to-end tests: it follows
//! redirects by hand (recording every hop), submits the self-submitting
//! pages a browser's script would submit (form_post responses, automatic
//! sign-out forms) and stops before the downstream app's redirect_uri,
//! which nothing serves. A tiny tolerant HTML scanner finds links and forms;
//! no HTML parser crate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::cookie::CookieStore as _;

/// How many requests one navigation may make before the browser gives up.
pub const MAX_HOPS: usize = 20;

/// A browser: one cookie jar, no automatic redirects.
pub struct Browser {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
}

/// Where a navigation ended.
#[derive(Clone, Debug)]
pub struct Page {
    /// The last URL: the `stop_at` URL when the navigation stopped there
    /// (not requested), else the URL of the last response.
    pub url: String,
    /// The status of the last response (the redirect or self-submitting
    /// page that led to `stop_at`, when it stopped there).
    pub status: u16,
    /// The `Location` header of the last response, when it had one.
    pub location: Option<String>,
    /// The body of the last response (the form_post page, when a
    /// self-submitting form led to `stop_at`: read it with [`auto_form`]).
    pub body: String,
    /// Every URL requested, in order, then the `stop_at` URL when it
    /// stopped there.
    pub hops: Vec<String>,
}

enum Request {
    Get(String),
    Post { url: String, body: String, origin: Option<String> },
}

impl Request {
    fn url(&self) -> &str {
        match self {
            Request::Get(url) | Request::Post { url, .. } => url,
        }
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("federa-tests-browser/1")
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        Browser { client, jar }
    }

    /// GETs `url` and follows 3xx `Location` headers (resolved against the
    /// current URL; 307/308 repeat a POST) up to [`MAX_HOPS`] requests, and
    /// submits self-submitting pages (see [`auto_form`]). Stops, without
    /// requesting it, at the first URL that starts with `stop_at` (never,
    /// when `stop_at` is empty; at once, with status 0, when `url` does).
    /// Panics (listing the hops) past [`MAX_HOPS`] or on a transport error.
    pub async fn navigate(&self, url: &str, stop_at: &str) -> Page {
        self.follow(Request::Get(url.to_owned()), stop_at).await
    }

    /// POSTs `fields` (form-encoded, with the `Origin` of `url`) to `url`,
    /// then follows like [`Browser::navigate`].
    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)], stop_at: &str) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        self.follow(Request::Post { url: url.to_owned(), body, origin: origin_of(url) }, stop_at).await
    }

    /// The `Cookie` header the browser would send to `url`, if any.
    pub fn cookies(&self, url: &str) -> Option<String> {
        let url = url::Url::parse(url).ok()?;
        self.jar.cookies(&url).and_then(|v| v.to_str().ok().map(str::to_owned))
    }

    /// The underlying client (same cookie jar, no redirects), for requests
    /// the helpers do not cover.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    async fn follow(&self, first: Request, stop_at: &str) -> Page {
        let mut hops: Vec<String> = Vec::new();
        let mut request = first;
        let (mut status, mut location, mut body) = (0u16, None::<String>, String::new());
        loop {
            let url = request.url().to_owned();
            if !stop_at.is_empty() && url.starts_with(stop_at) {
                hops.push(url.clone());
                return Page { url, status, location, body, hops };
            }
            if hops.len() >= MAX_HOPS {
                panic!("the browser gave up after {MAX_HOPS} requests without reaching {stop_at:?}; hops: {hops:#?}");
            }
            hops.push(url.clone());
            let builder = match &request {
                Request::Get(u) => self.client.get(u),
                Request::Post { url: u, body, origin } => {
                    let b = self
                        .client
                        .post(u)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body.clone());
                    match origin {
                        Some(o) => b.header("origin", o),
                        None => b,
                    }
                }
            };
            let resp = builder
                .header("accept", "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8")
                .send()
                .await
                .unwrap_or_else(|e| panic!("the browser could not fetch {url}: {e}; hops: {hops:#?}"));
            status = resp.status().as_u16();
            location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
            body = resp.text().await.unwrap_or_default();

            if (300..400).contains(&status) {
                if let Some(loc) = &location {
                    let next = resolve(&url, loc);
                    request = match (status, request) {
                        (307 | 308, Request::Post { body, origin, .. }) => Request::Post { url: next, body, origin },
                        _ => Request::Get(next),
                    };
                    continue;
                }
            }
            if status == 200 {
                if let Some(form) = auto_form(&body) {
                    let action = if form.action.is_empty() { url.clone() } else { resolve(&url, &form.action) };
                    let encoded = url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(form.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                        .finish();
                    request = Request::Post { url: action, body: encoded, origin: origin_of(&url) };
                    continue;
                }
            }
            return Page { url, status, location, body, hops };
        }
    }
}

/// `reference` resolved against `base` (returned as is when either does
/// not parse).
fn resolve(base: &str, reference: &str) -> String {
    match url::Url::parse(base).and_then(|b| b.join(reference)) {
        Ok(u) => u.to_string(),
        Err(_) => reference.to_owned(),
    }
}

/// The `Origin` header value of a URL.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let origin = u.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The query and fragment parameters of a URL (absolute or not), decoded;
/// the fragment's after the query's, the first value of a repeated name
/// kept.
pub fn query_params(url: &str) -> BTreeMap<String, String> {
    let (rest, fragment) = match url.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (url, None),
    };
    let query = rest.split_once('?').map(|(_, q)| q);
    let mut out = BTreeMap::new();
    for part in [query, fragment].into_iter().flatten() {
        for (k, v) in url::form_urlencoded::parse(part.as_bytes()) {
            out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
    }
    out
}

/// Every `<a href="...">text</a>` of a page: the href with HTML entities
/// decoded, and the text with tags stripped, entities decoded and
/// whitespace collapsed.
pub fn links(html: &str) -> Vec<(String, String)> {
    let tags = scan(html);
    let mut out = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        if tag.closing || tag.name != "a" {
            continue;
        }
        let Some(href) = tag.attr("href") else { continue };
        let end = tags[i + 1..].iter().find(|t| t.name == "a").map_or(html.len(), |t| t.start);
        let mut text = String::new();
        let mut pos = tag.end;
        for t in tags[i + 1..].iter().take_while(|t| t.start < end) {
            text.push_str(&html[pos..t.start]);
            text.push(' ');
            pos = t.end;
        }
        if pos < end {
            text.push_str(&html[pos..end]);
        }
        out.push((href.to_owned(), collapse(&decode_entities(&text))));
    }
    out
}

/// One `<form>` of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    /// The method, lower case (`get` when absent).
    pub method: String,
    /// The action as written (entities decoded; empty when absent).
    pub action: String,
    /// The named `<input>`s a submission sends: hidden ones, text ones with
    /// their value, checked checkboxes and radios (not buttons, selects or
    /// textareas).
    pub fields: Vec<(String, String)>,
    /// Whether the form has nothing for a user to fill or choose: only
    /// hidden inputs, and no select, textarea or named button.
    pub hidden_only: bool,
}

impl Form {
    /// The value of a field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Every form of a page, in order.
pub fn forms(html: &str) -> Vec<Form> {
    let tags = scan(html);
    let mut out = Vec::new();
    let mut current: Option<Form> = None;
    for tag in &tags {
        match (tag.name.as_str(), tag.closing) {
            ("form", false) => {
                if let Some(f) = current.take() {
                    out.push(f);
                }
                current = Some(Form {
                    method: tag.attr("method").unwrap_or("get").to_ascii_lowercase(),
                    action: tag.attr("action").unwrap_or("").to_owned(),
                    fields: Vec::new(),
                    hidden_only: true,
                });
            }
            ("form", true) => {
                if let Some(f) = current.take() {
                    out.push(f);
                }
            }
            ("input", false) => {
                let Some(f) = current.as_mut() else { continue };
                let kind = tag.attr("type").unwrap_or("text").to_ascii_lowercase();
                let name = tag.attr("name").unwrap_or("");
                let value = tag.attr("value").unwrap_or("");
                match kind.as_str() {
                    "hidden" => {}
                    "submit" | "button" | "image" | "reset" => {
                        if !name.is_empty() {
                            f.hidden_only = false;
                        }
                        continue;
                    }
                    _ => f.hidden_only = false,
                }
                let unchecked = matches!(kind.as_str(), "checkbox" | "radio") && tag.attr("checked").is_none();
                if !name.is_empty() && !unchecked {
                    f.fields.push((name.to_owned(), value.to_owned()));
                }
            }
            ("select" | "textarea", false) => {
                if let Some(f) = current.as_mut() {
                    f.hidden_only = false;
                }
            }
            ("button", false) => {
                if let Some(f) = current.as_mut() {
                    if tag.attr("name").is_some_and(|n| !n.is_empty()) {
                        f.hidden_only = false;
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(f) = current {
        out.push(f);
    }
    out
}

/// The form a browser would submit by itself on loading this page, if any:
/// the page's first form, when it is a POST with nothing for a user to fill
/// or choose ([`Form::hidden_only`]), and the page has a script (or an
/// attribute calling `submit()`) to submit it — what form_post responses
/// and self-submitting sign-out pages look like.
pub fn auto_form(html: &str) -> Option<Form> {
    let tags = scan(html);
    let scripted =
        tags.iter().any(|t| (t.name == "script" && !t.closing) || t.attrs.iter().any(|(_, v)| v.contains("submit()")));
    if !scripted {
        return None;
    }
    let form = forms(html).into_iter().next()?;
    (form.method == "post" && form.hidden_only).then_some(form)
}

/// One tag found by [`scan`].
struct Tag {
    /// Lower case.
    name: String,
    closing: bool,
    /// Names lower case, values entity-decoded.
    attrs: Vec<(String, String)>,
    /// Byte offsets of `<` and one past `>`.
    start: usize,
    end: usize,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The tags of a page, tolerant of anything: comments, doctypes and stray
/// `<` are skipped, and the content of `<script>` and `<style>` is not
/// scanned.
fn scan(html: &str) -> Vec<Tag> {
    let b = html.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        let start = i + off;
        let rest = &html[start..];
        if rest.starts_with("<!--") {
            i = rest.find("-->").map_or(b.len(), |e| start + e + 3);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            i = rest.find('>').map_or(b.len(), |e| start + e + 1);
            continue;
        }
        let closing = rest.starts_with("</");
        let name_start = start + if closing { 2 } else { 1 };
        let mut j = name_start;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-' || b[j] == b':') {
            j += 1;
        }
        if j == name_start || !b[name_start].is_ascii_alphabetic() {
            i = start + 1;
            continue;
        }
        let name = html[name_start..j].to_ascii_lowercase();
        let (attrs, end) = scan_attrs(html, j);
        let raw = name == "script" || name == "style";
        tags.push(Tag { name: name.clone(), closing, attrs, start, end });
        i = end;
        if raw && !closing {
            // Skip to the matching end tag, which the next round scans.
            let lower = html[end..].to_ascii_lowercase();
            i = lower.find(&format!("</{name}")).map_or(b.len(), |e| end + e);
        }
    }
    tags
}

/// The attributes from `from` to the end of a tag, and the offset past `>`.
fn scan_attrs(html: &str, from: usize) -> (Vec<(String, String)>, usize) {
    let b = html.as_bytes();
    let mut attrs = Vec::new();
    let mut i = from;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return (attrs, b.len());
        }
        if b[i] == b'>' {
            return (attrs, i + 1);
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let quote = b[i] as char;
                let vstart = i + 1;
                let vend = html[vstart..].find(quote).map_or(b.len(), |e| vstart + e);
                value = decode_entities(&html[vstart..vend]);
                i = (vend + 1).min(b.len());
            } else {
                let vstart = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = decode_entities(&html[vstart..i]);
            }
        }
        if !name.is_empty() {
            attrs.push((name, value));
        }
    }
}

/// `s` with HTML character references decoded (the named ones pages use,
/// and all numeric ones); unknown ones are left as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let semi = rest[1..].find(';').map(|e| e + 1).filter(|&e| e <= 12);
        let decoded = semi.and_then(|e| {
            let entity = &rest[1..e];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                "sol" => Some('/'),
                "equals" => Some('='),
                _ => {
                    let num = entity.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `s` trimmed, with runs of whitespace (and no-break spaces) made one
/// space.
fn collapse(s: &str) -> String {
    s.split(|c: char| c.is_whitespace()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_decode_hrefs_and_strip_text() {
        let html = r#"<!DOCTYPE html><html><head><title>x</title>
            <script>var s = "<a href='/not-a-link'>no</a>";</script></head><body>
            <!-- <a href="/commented">no</a> -->
            <ul><li><A HREF="/broker/login?provider=up&amp;state=a%20b" class=btn>
              Sign in with <b>Upstream</b>&nbsp;IdP
            </a></li>
            <li><a class='x' href='/two'>Two &amp; &#x33; &#52;</a>
            <li><a name="anchor">no href</a>
            <li><a href=/bare>bare</a></ul></body></html>"#;
        assert_eq!(
            links(html),
            vec![
                ("/broker/login?provider=up&state=a%20b".to_owned(), "Sign in with Upstream IdP".to_owned()),
                ("/two".to_owned(), "Two & 3 4".to_owned()),
                ("/bare".to_owned(), "bare".to_owned()),
            ]
        );
    }

    #[test]
    fn unclosed_link_text_stops_at_the_next_link() {
        assert_eq!(
            links("<a href=\"/a\">first <a href=\"/b\">second"),
            vec![("/a".to_owned(), "first".to_owned()), ("/b".to_owned(), "second".to_owned())]
        );
    }

    #[test]
    fn form_post_pages_are_auto_submitted() {
        // As oidc-provider's form_post response mode writes it.
        let html = r#"<!DOCTYPE html>
<html>
<head>
  <title>Submitting Callback</title>
  <script>document.addEventListener('DOMContentLoaded', function () { document.forms[0].submit() });</script>
</head>
<body>
  <form method="post" action="http://127.0.0.1:8080/cb?x=1&amp;y=2">
    <input type="hidden" name="code" value="c&#x2F;1"/>
<input type="hidden" name="state" value="s &quot;q&quot;"/>
    <noscript>
      Your browser does not support JavaScript or you've disabled it.<br/>
      <button autofocus type="submit">Continue</button>
    </noscript>
  </form>
</body>
</html>"#;
        let form = auto_form(html).unwrap();
        assert_eq!(form.action, "http://127.0.0.1:8080/cb?x=1&y=2");
        assert_eq!(form.method, "post");
        assert_eq!(form.fields, vec![("code".into(), "c/1".into()), ("state".into(), "s \"q\"".into())]);
        assert_eq!(form.field("state"), Some("s \"q\""));
    }

    #[test]
    fn body_onload_submit_counts_as_a_script() {
        let html = r#"<body onload="document.forms[0].submit()"><FORM METHOD=POST ACTION=/cb>
            <INPUT TYPE=hidden NAME=id_token VALUE=abc></FORM></body>"#;
        assert_eq!(auto_form(html).unwrap().fields, vec![("id_token".into(), "abc".into())]);
    }

    #[test]
    fn forms_for_a_user_are_not_auto_submitted() {
        let script = "<script>document.forms[0].submit()</script>";
        // A visible input.
        let login = format!(
            r#"{script}<form method="post" action="/login"><input type="hidden" name="csrf" value="t">
            <input name="username"><input type="password" name="password"><button>Sign in</button></form>"#
        );
        assert_eq!(auto_form(&login), None);
        let form = &forms(&login)[0];
        assert!(!form.hidden_only);
        assert_eq!(
            form.fields,
            vec![("csrf".into(), "t".into()), ("username".into(), "".into()), ("password".into(), "".into())]
        );
        // A choice between named buttons.
        let consent = format!(
            r#"{script}<form method="post" action="/consent"><input type="hidden" name="csrf" value="t">
            <button name="decision" value="allow">Allow</button><button name="decision" value="deny">Deny</button></form>"#
        );
        assert_eq!(auto_form(&consent), None);
        // A GET form, and a page with no script.
        assert_eq!(
            auto_form(&format!(r#"{script}<form action="/s"><input type="hidden" name="a" value="1"></form>"#)),
            None
        );
        assert_eq!(
            auto_form(r#"<form method="post" action="/s"><input type="hidden" name="a" value="1"></form>"#),
            None
        );
        // Only the first form counts.
        let two = format!(
            r#"{script}<form method="get" action="/search"><input name="q"></form>
            <form method="post" action="/s"><input type="hidden" name="a" value="1"></form>"#
        );
        assert_eq!(auto_form(&two), None);
        assert_eq!(forms(&two).len(), 2);
        assert_eq!(forms(&two)[1].action, "/s");
    }

    #[test]
    fn checkboxes_count_only_when_checked() {
        let f = &forms(
            r#"<form><input type=checkbox name=a value=1 checked><input type=checkbox name=b value=2><select name=c></select></form>"#,
        )[0];
        assert_eq!(f.fields, vec![("a".into(), "1".into())]);
        assert!(!f.hidden_only);
    }

    #[test]
    fn query_params_read_query_and_fragment() {
        let p = query_params("http://127.0.0.1:9/cb?code=a%2Bb+c&state=xyz&state=second#id_token=t&error=");
        assert_eq!(p.get("code").map(String::as_str), Some("a+b c"));
        assert_eq!(p.get("state").map(String::as_str), Some("xyz"));
        assert_eq!(p.get("id_token").map(String::as_str), Some("t"));
        assert_eq!(p.get("error").map(String::as_str), Some(""));
        assert!(query_params("http://x/cb").is_empty());
        assert_eq!(query_params("/cb#a=1").get("a").map(String::as_str), Some("1"));
    }

    #[test]
    fn entities_decode_and_tolerate_garbage() {
        assert_eq!(
            decode_entities("a &amp; b &lt;&gt; &#39;&#x27; &bogus; & &#xZZ; &amp"),
            "a & b <> '' &bogus; & &#xZZ; &amp"
        );
    }

    #[test]
    fn resolve_and_origin() {
        assert_eq!(resolve("http://h:1/a/b?c", "/x?y"), "http://h:1/x?y");
        assert_eq!(resolve("http://h:1/a/b?c", "d"), "http://h:1/a/d");
        assert_eq!(resolve("http://h:1/a/b?c", "http://o/p"), "http://o/p");
        assert_eq!(origin_of("http://127.0.0.1:8080/x?y").as_deref(), Some("http://127.0.0.1:8080"));
    }
}
