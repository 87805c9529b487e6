//! The pages people see: the login page (the realm's upstream identity
//! providers, one of which the user picks), the error page, the logout
//! confirmation, the logged-out page and the auto-submitting form of OAuth 2.0 Form Post Response Mode.
//!
//! Pages are handlebars templates. The "default" theme is built into the
//! binary (`themes/default/` at the root of the workspace); an override folder
//! may hold more themes, one folder each, and a theme folder may override only
//! some of the templates: the rest come from the default theme. A folder named
//! "default" overrides the built-in theme itself.
//!
//! Templates render typed page data ([`LoginPage`], [`ErrorPage`], ..) in
//! handlebars strict mode, so a template that names a missing field fails
//! instead of printing nothing; `if` and `unless` are strict too. Every theme
//! is rendered with sample data when it is loaded, so a broken override theme
//! stops the server at start rather than at somebody's first login. Values
//! are HTML-escaped by `{{value}}`; templates never use `{{{value}}}` for data.
//!
//! A name that no theme has falls back to "default" without an error: realm
//! exports name Keycloak themes, such as "keycloak", which Federa does not have.
//!
//! The caller owns the HTTP side: URLs put in the pages (`href`, `action`)
//! must already be validated, and the responses need their security headers
//! (a Content-Security-Policy carrying the form-post page's script nonce,
//! `frame-ancestors`, `Cache-Control: no-store`).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonTruthy, Output, RenderContext, RenderErrorReason,
    Renderable,
};
use serde::Serialize;

/// The theme that is always there, and that unknown theme names fall back to.
const DEFAULT_THEME: &str = "default";

/// A template: the name it is registered (and used as a partial) under, the
/// file a theme folder overrides it with, and the built-in source.
struct TemplateFile {
    name: &'static str,
    file: &'static str,
    source: &'static str,
}

/// The layout is a partial: each page defines the inline partials "title" and
/// "content" and then renders `{{> layout}}`.
const LAYOUT: &str = "layout";
const LOGIN: &str = "login";
const ERROR: &str = "error";
const LOGGED_OUT: &str = "logged-out";
const LOGOUT_CONFIRM: &str = "logout-confirm";
const FORM_POST: &str = "form-post";

const TEMPLATES: [TemplateFile; 6] = [
    TemplateFile { name: LAYOUT, file: "layout.hbs", source: include_str!("../../../themes/default/layout.hbs") },
    TemplateFile { name: LOGIN, file: "login.hbs", source: include_str!("../../../themes/default/login.hbs") },
    TemplateFile { name: ERROR, file: "error.hbs", source: include_str!("../../../themes/default/error.hbs") },
    TemplateFile {
        name: LOGGED_OUT,
        file: "logged-out.hbs",
        source: include_str!("../../../themes/default/logged-out.hbs"),
    },
    TemplateFile {
        name: LOGOUT_CONFIRM,
        file: "logout-confirm.hbs",
        source: include_str!("../../../themes/default/logout-confirm.hbs"),
    },
    TemplateFile {
        name: FORM_POST,
        file: "form-post.hbs",
        source: include_str!("../../../themes/default/form-post.hbs"),
    },
];

/// A static file: its name (in `static/` of a theme folder, and in the URL),
/// its content type and the built-in content.
struct StaticFile {
    name: &'static str,
    content_type: &'static str,
    content: &'static [u8],
}

const STATIC_FILES: [StaticFile; 1] = [StaticFile {
    name: "federa.css",
    content_type: "text/css",
    content: include_bytes!("../../../themes/default/static/federa.css"),
}];

/// The loaded themes, each a handlebars registry in strict mode.
#[derive(Debug)]
pub struct Themes {
    default: Theme,
    others: HashMap<String, Theme>,
}

#[derive(Debug)]
struct Theme {
    registry: Handlebars<'static>,
    /// The static files this theme overrides, by name.
    statics: HashMap<&'static str, Vec<u8>>,
}

impl Themes {
    /// The built-in "default" theme (templates embedded from
    /// `themes/default/`), plus every theme folder found in `override_dir`: a
    /// folder of theme folders, each named after its theme and holding some of
    /// `layout.hbs`, `login.hbs`, `error.hbs`, `logged-out.hbs`,
    /// `logout-confirm.hbs`, `form-post.hbs` and `static/federa.css`; what a theme folder does not
    /// hold comes from the default theme. Folders whose name starts with a dot
    /// are skipped (Kubernetes mounts config maps with a `..data` folder).
    ///
    /// Fails when `override_dir` or a file in it cannot be read, when a
    /// template does not parse, and when a template cannot render sample data
    /// (a misspelt field name, for instance).
    pub fn load(override_dir: Option<&Path>) -> Result<Self, PageError> {
        let mut themes = Self { default: Theme::load(DEFAULT_THEME, None)?, others: HashMap::new() };
        themes.default.check(DEFAULT_THEME)?;
        let Some(dir) = override_dir else {
            return Ok(themes);
        };
        let entries = fs::read_dir(dir).map_err(|e| io_error(dir, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(dir, &e))?;
            let path = entry.path();
            // `is_dir` follows symbolic links, as mounted volumes often use them.
            if !path.is_dir() {
                continue;
            }
            let name = entry
                .file_name()
                .into_string()
                .map_err(|name| PageError::Io(format!("theme folder {name:?} in {}: not UTF-8", dir.display())))?;
            if name.starts_with('.') {
                continue;
            }
            let theme = Theme::load(&name, Some(&path))?;
            theme.check(&name)?;
            log::info!("loaded theme {name:?} from {}", path.display());
            if name == DEFAULT_THEME {
                themes.default = theme;
            } else {
                themes.others.insert(name, theme);
            }
        }
        Ok(themes)
    }

    /// Whether a theme of that name was loaded ("default" always is).
    pub fn has(&self, theme: &str) -> bool {
        theme == DEFAULT_THEME || self.others.contains_key(theme)
    }

    /// The login page of `theme` (or of "default" when there is no such theme).
    pub fn render_login(&self, theme: &str, page: &LoginPage<'_>) -> Result<String, PageError> {
        self.theme(theme).render(theme, LOGIN, page)
    }

    /// The error page of `theme` (or of "default" when there is no such theme).
    pub fn render_error(&self, theme: &str, page: &ErrorPage<'_>) -> Result<String, PageError> {
        self.theme(theme).render(theme, ERROR, page)
    }

    /// The logged-out page of `theme` (or of "default" when there is no such theme).
    pub fn render_logged_out(&self, theme: &str, page: &LoggedOutPage<'_>) -> Result<String, PageError> {
        self.theme(theme).render(theme, LOGGED_OUT, page)
    }

    /// The logout confirmation of `theme` (or of "default" when there is no such theme).
    pub fn render_logout_confirm(&self, theme: &str, page: &LogoutConfirmPage<'_>) -> Result<String, PageError> {
        self.theme(theme).render(theme, LOGOUT_CONFIRM, page)
    }

    /// The form-post page of `theme` (or of "default" when there is no such theme).
    pub fn render_form_post(&self, theme: &str, page: &FormPostPage<'_>) -> Result<String, PageError> {
        self.theme(theme).render(theme, FORM_POST, page)
    }

    /// The static file `name` (e.g. "federa.css") of `theme`, with its content
    /// type, for a route such as `/resources/{name}`. Only the files the
    /// default theme has are served, so `name` never reaches the file system.
    pub fn static_file(&self, theme: &str, name: &str) -> Option<(&'static str, Vec<u8>)> {
        let file = STATIC_FILES.iter().find(|file| file.name == name)?;
        let content = match self.theme(theme).statics.get(file.name) {
            Some(content) => content.clone(),
            None => file.content.to_vec(),
        };
        Some((file.content_type, content))
    }

    fn theme(&self, theme: &str) -> &Theme {
        self.others.get(theme).unwrap_or(&self.default)
    }
}

impl Theme {
    /// The templates and static files of the theme `name`: from `folder`
    /// where it has them, built in otherwise.
    fn load(name: &str, folder: Option<&Path>) -> Result<Self, PageError> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_helper("if", Box::new(StrictIf { positive: true }));
        registry.register_helper("unless", Box::new(StrictIf { positive: false }));
        let mut statics = HashMap::new();
        for template in &TEMPLATES {
            let source = match folder {
                Some(folder) => {
                    let path = folder.join(template.file);
                    read_optional(&path, fs::read_to_string(&path))?
                }
                None => None,
            };
            let source = source.as_deref().unwrap_or(template.source);
            registry
                .register_template_string(template.name, source)
                .map_err(|e| PageError::Template(format!("theme {name:?}, template {}: {e}", template.file)))?;
        }
        if let Some(folder) = folder {
            for file in &STATIC_FILES {
                let path = folder.join("static").join(file.name);
                if let Some(content) = read_optional(&path, fs::read(&path))? {
                    statics.insert(file.name, content);
                }
            }
            warn_unknown_templates(name, folder);
        }
        Ok(Self { registry, statics })
    }

    fn render<T: Serialize>(&self, theme: &str, template: &str, data: &T) -> Result<String, PageError> {
        self.registry
            .render(template, data)
            .map_err(|e| PageError::Template(format!("theme {theme:?}, template {template}: {e}")))
    }

    /// Renders every page with sample data: once with every optional value
    /// present and every list filled, once with none, so that both sides of
    /// each `if` and `each` are tried.
    fn check(&self, theme: &str) -> Result<(), PageError> {
        let providers = [IdpButton { alias: "idp", display_name: "Identity provider", href: "/login/idp" }];
        let fields = [FormField { name: "code", value: "abc" }, FormField { name: "state", value: "xyz" }];
        for full in [true, false] {
            let common = || Common { realm_display_name: "Realm", locale: "en", static_base: "/resources" };
            self.render(
                theme,
                LOGIN,
                &LoginPage {
                    common: common(),
                    providers: if full { &providers } else { &[] },
                    client_name: full.then_some("Client"),
                },
            )?;
            self.render(
                theme,
                ERROR,
                &ErrorPage {
                    common: common(),
                    title: "Error",
                    message: "Something went wrong.",
                    support_id: full.then_some("ref"),
                },
            )?;
            self.render(theme, LOGGED_OUT, &LoggedOutPage { common: common() })?;
            self.render(
                theme,
                LOGOUT_CONFIRM,
                &LogoutConfirmPage {
                    common: common(),
                    action: "/realms/realm/protocol/openid-connect/logout",
                    confirm_field: "confirm",
                    confirm_token: "token",
                    client_name: full.then_some("Client"),
                },
            )?;
            self.render(
                theme,
                FORM_POST,
                &FormPostPage {
                    common: common(),
                    action: "https://client.example/callback",
                    fields: if full { &fields } else { &[] },
                    script_nonce: if full { "nonce" } else { "" },
                },
            )?;
        }
        Ok(())
    }
}

/// The content read from `path`, or `None` when there is no such file.
fn read_optional<T>(path: &Path, read: io::Result<T>) -> Result<Option<T>, PageError> {
    match read {
        Ok(content) => Ok(Some(content)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, &e)),
    }
}

/// A misspelt file name would otherwise be ignored without a word.
fn warn_unknown_templates(theme: &str, folder: &Path) {
    let Ok(entries) = fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if file.ends_with(".hbs") && !TEMPLATES.iter().any(|template| template.file == file) {
            log::warn!("theme {theme:?}: {} is not a template Federa uses, and is ignored", entry.path().display());
        }
    }
}

fn io_error(path: &Path, e: &io::Error) -> PageError {
    PageError::Io(format!("{}: {e}", path.display()))
}

/// `if` and `unless` that fail on a missing variable, as strict mode does
/// everywhere else: the built-in helpers take a misspelt condition for false.
#[derive(Clone, Copy)]
struct StrictIf {
    /// `true` for `if`, `false` for `unless`.
    positive: bool,
}

impl HelperDef for StrictIf {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let helper = if self.positive { "if" } else { "unless" };
        let param = h.param(0).ok_or(RenderErrorReason::ParamNotFoundForIndex(helper, 0))?;
        if r.strict_mode() && param.is_value_missing() {
            return Err(RenderErrorReason::MissingVariable(param.relative_path().cloned()).into());
        }
        let include_zero = h.hash_get("includeZero").and_then(|v| v.value().as_bool()).unwrap_or(false);
        let chosen = if param.value().is_truthy(include_zero) == self.positive { h.template() } else { h.inverse() };
        match chosen {
            Some(template) => template.render(r, ctx, rc, out),
            None => Ok(()),
        }
    }
}

/// What every page has.
#[derive(Serialize)]
pub struct Common<'a> {
    /// The realm's display name (its name when it has none), shown on every page.
    pub realm_display_name: &'a str,
    /// The language of the page, a BCP 47 tag for `<html lang>`, such as "en".
    pub locale: &'a str,
    /// Where the theme's static files are served, without a trailing slash:
    /// the stylesheet is `{static_base}/federa.css`.
    pub static_base: &'a str,
}

/// One upstream identity provider on the login page.
#[derive(Serialize)]
pub struct IdpButton<'a> {
    /// The provider's alias in the realm.
    pub alias: &'a str,
    /// The name people see.
    pub display_name: &'a str,
    /// Where the button leads: the broker's login endpoint for this provider.
    pub href: &'a str,
}

/// The login page: the realm's upstream identity providers, in order.
#[derive(Serialize)]
pub struct LoginPage<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    /// Shown in this order; an empty list says that no sign-in method is available.
    pub providers: &'a [IdpButton<'a>],
    /// The application the person is signing in to, when it has a name.
    pub client_name: Option<&'a str>,
}

/// The error page. Its text is written for people: internal causes belong in
/// the log, under `support_id`.
#[derive(Serialize)]
pub struct ErrorPage<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    pub title: &'a str,
    pub message: &'a str,
    /// The reference of the request, which support can find in the log.
    pub support_id: Option<&'a str>,
}

/// The page shown after logout when there is nowhere to send the person back to.
#[derive(Serialize)]
pub struct LoggedOutPage<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
}

/// The question asked before a sign-out that the application's request
/// alone cannot be trusted for: a form posting `confirm_token` (as the field
/// `confirm_field`) to `action`, and nothing that submits it by itself.
#[derive(Serialize)]
pub struct LogoutConfirmPage<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    /// The logout endpoint.
    pub action: &'a str,
    /// The name of the hidden field carrying the token.
    pub confirm_field: &'a str,
    /// The one-time confirmation token.
    pub confirm_token: &'a str,
    /// The application that asked, when it is known and has a name.
    pub client_name: Option<&'a str>,
}

/// One hidden field of the form-post page: a parameter of the authorization response.
#[derive(Serialize)]
pub struct FormField<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// OAuth 2.0 Form Post Response Mode: a form that posts the authorization
/// response to the client's redirect URI. Its Continue button works without
/// JavaScript; a script submits it at once when `script_nonce` is not empty.
#[derive(Serialize)]
pub struct FormPostPage<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    /// The client's redirect URI, already validated.
    pub action: &'a str,
    pub fields: &'a [FormField<'a>],
    /// The nonce of the response's Content-Security-Policy (`script-src
    /// 'nonce-...'`); empty to leave the script out.
    pub script_nonce: &'a str,
}

/// Why themes could not be loaded or a page could not be rendered. The text
/// is for the log, never for the page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A template does not parse, or cannot render its data.
    #[error("theme template error: {0}")]
    Template(String),
    /// A theme folder or file cannot be read.
    #[error("theme files cannot be read: {0}")]
    Io(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const XSS: &str = "<script>alert(1)</script>";
    const XSS_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

    fn common() -> Common<'static> {
        Common { realm_display_name: "Acme Corp", locale: "en", static_base: "/resources/acme" }
    }

    const PROVIDERS: [IdpButton<'static>; 3] = [
        IdpButton { alias: "google", display_name: "Google", href: "/realms/acme/broker/google/login?s=1" },
        IdpButton { alias: "azure", display_name: "Microsoft Entra ID", href: "/realms/acme/broker/azure/login?s=2" },
        IdpButton { alias: "okta", display_name: "Okta", href: "/realms/acme/broker/okta/login?s=3" },
    ];

    const FIELDS: [FormField<'static>; 2] =
        [FormField { name: "code", value: "c0de" }, FormField { name: "state", value: "st4te" }];

    fn login(theme: &Themes, name: &str) -> String {
        let page = LoginPage { common: common(), providers: &PROVIDERS, client_name: Some("Payroll") };
        theme.render_login(name, &page).unwrap()
    }

    fn error(themes: &Themes, name: &str) -> String {
        let page = ErrorPage {
            common: common(),
            title: "Sign-in failed",
            message: "The identity provider refused the sign-in.",
            support_id: Some("req-42"),
        };
        themes.render_error(name, &page).unwrap()
    }

    fn logged_out(themes: &Themes, name: &str) -> String {
        themes.render_logged_out(name, &LoggedOutPage { common: common() }).unwrap()
    }

    fn logout_confirm(themes: &Themes, name: &str) -> String {
        let page = LogoutConfirmPage {
            common: common(),
            action: "https://id.example/realms/acme/protocol/openid-connect/logout",
            confirm_field: "federa_confirm",
            confirm_token: "t0ken",
            client_name: Some("Payroll"),
        };
        themes.render_logout_confirm(name, &page).unwrap()
    }

    fn form_post(themes: &Themes, name: &str) -> String {
        let page = FormPostPage {
            common: common(),
            action: "https://app.example/callback",
            fields: &FIELDS,
            script_nonce: "n0nce",
        };
        themes.render_form_post(name, &page).unwrap()
    }

    /// An override folder with a theme "custom" that overrides only login.hbs.
    fn override_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let custom = dir.path().join("custom");
        fs::create_dir(&custom).unwrap();
        let login =
            include_str!("../../../themes/default/login.hbs").replace("<h1>Sign in</h1>", "<h1>Custom sign in</h1>");
        fs::write(custom.join("login.hbs"), login).unwrap();
        dir
    }

    /// An override folder with one theme "broken" holding one template file.
    fn broken_theme(file: &str, source: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("broken")).unwrap();
        fs::write(dir.path().join("broken").join(file), source).unwrap();
        dir
    }

    fn assert_html_page(html: &str) {
        assert!(html.trim_start().starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains(r#"<html lang="en">"#), "{html}");
        assert!(html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#), "{html}");
        assert!(html.contains(r#"<link rel="stylesheet" href="/resources/acme/federa.css">"#), "{html}");
        assert!(html.contains("Acme Corp"), "{html}");
        assert!(html.contains("<main"), "{html}");
        assert_eq!(html.matches("<h1>").count(), 1, "{html}");
        assert!(html.trim_end().ends_with("</html>"), "{html}");
        assert!(!html.contains("onload"), "{html}");
    }

    #[test]
    fn every_page_of_every_theme_renders() {
        let dir = override_dir();
        let themes = Themes::load(Some(dir.path())).unwrap();
        for theme in ["default", "custom"] {
            assert!(themes.has(theme));
            for html in [
                login(&themes, theme),
                error(&themes, theme),
                logged_out(&themes, theme),
                logout_confirm(&themes, theme),
                form_post(&themes, theme),
            ] {
                assert_html_page(&html);
            }
        }
        assert!(login(&themes, "custom").contains("<h1>Custom sign in</h1>"));
        assert!(login(&themes, "default").contains("<h1>Sign in</h1>"));
        // What "custom" does not override comes from "default".
        assert_eq!(error(&themes, "custom"), error(&themes, "default"));
        assert_eq!(logged_out(&themes, "custom"), logged_out(&themes, "default"));
        assert_eq!(logout_confirm(&themes, "custom"), logout_confirm(&themes, "default"));
        assert_eq!(form_post(&themes, "custom"), form_post(&themes, "default"));
    }

    #[test]
    fn logout_confirm_posts_the_token_and_submits_nothing_by_itself() {
        let themes = Themes::load(None).unwrap();
        let html = logout_confirm(&themes, "default");
        assert!(html.contains("<h1>Sign out of Acme Corp?</h1>"), "{html}");
        assert!(html.contains("Payroll asks to sign you out."), "{html}");
        assert!(
            html.contains(
                r#"<form method="post" action="https://id.example/realms/acme/protocol/openid-connect/logout">"#
            ),
            "{html}"
        );
        assert!(html.contains(r#"<input type="hidden" name="federa_confirm" value="t0ken">"#), "{html}");
        assert!(html.contains(r#"<button type="submit""#), "{html}");
        assert!(!html.contains("<script"), "only the person submits it: {html}");
        let page = LogoutConfirmPage {
            common: common(),
            action: "/logout",
            confirm_field: "c",
            confirm_token: "t",
            client_name: None,
        };
        let html = themes.render_logout_confirm("default", &page).unwrap();
        assert!(!html.contains("asks to sign you out"), "{html}");
    }

    #[test]
    fn login_lists_providers_in_order_with_their_links() {
        let themes = Themes::load(None).unwrap();
        let html = login(&themes, "default");
        let mut last = 0;
        for idp in &PROVIDERS {
            // `=` is escaped in attribute values, which browsers read back as `=`.
            let link = format!(
                r#"href="{}" data-idp="{}">{}</a>"#,
                idp.href.replace('=', "&#x3D;"),
                idp.alias,
                idp.display_name
            );
            let at = html.find(&link).unwrap_or_else(|| panic!("{link} not in {html}"));
            assert!(at > last, "{} is out of order in {html}", idp.display_name);
            last = at;
        }
        assert!(html.contains("to continue to Payroll"));
        assert!(!html.contains("No sign-in method"));
    }

    #[test]
    fn login_without_providers_says_so() {
        let themes = Themes::load(None).unwrap();
        let page = LoginPage { common: common(), providers: &[], client_name: None };
        let html = themes.render_login("default", &page).unwrap();
        assert!(html.contains("No sign-in method is available"), "{html}");
        assert!(!html.contains("<ul"), "{html}");
        assert!(!html.contains("to continue to"), "{html}");
    }

    #[test]
    fn data_is_html_escaped() {
        let themes = Themes::load(None).unwrap();
        let common = || Common { realm_display_name: XSS, locale: "en", static_base: "/r" };
        let providers = [IdpButton { alias: XSS, display_name: XSS, href: XSS }];
        let fields = [FormField { name: XSS, value: XSS }];
        let pages = [
            themes
                .render_login("default", &LoginPage { common: common(), providers: &providers, client_name: Some(XSS) })
                .unwrap(),
            themes
                .render_error(
                    "default",
                    &ErrorPage { common: common(), title: XSS, message: XSS, support_id: Some(XSS) },
                )
                .unwrap(),
            themes.render_logged_out("default", &LoggedOutPage { common: common() }).unwrap(),
            themes
                .render_logout_confirm(
                    "default",
                    &LogoutConfirmPage {
                        common: common(),
                        action: XSS,
                        confirm_field: XSS,
                        confirm_token: XSS,
                        client_name: Some(XSS),
                    },
                )
                .unwrap(),
            themes
                .render_form_post(
                    "default",
                    &FormPostPage { common: common(), action: XSS, fields: &fields, script_nonce: XSS },
                )
                .unwrap(),
        ];
        for html in pages {
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("alert(1)</script>"), "{html}");
            assert!(html.contains(XSS_ESCAPED), "{html}");
        }
        // An attribute value cannot be closed early either.
        let html = themes
            .render_error(
                "default",
                &ErrorPage {
                    common: Common { realm_display_name: "R", locale: r#"en" onmouseover="x"#, static_base: "/r" },
                    title: "t",
                    message: "m",
                    support_id: None,
                },
            )
            .unwrap();
        assert!(html.contains(r#"<html lang="en&quot; onmouseover&#x3D;&quot;x">"#), "{html}");
    }

    #[test]
    fn built_in_templates_never_skip_escaping() {
        for template in &TEMPLATES {
            assert!(!template.source.contains("{{{"), "{} uses {{{{{{", template.file);
            assert!(!template.source.contains("{{&"), "{} uses {{{{&", template.file);
            assert!(!template.source.contains("onload"), "{}", template.file);
        }
    }

    #[test]
    fn form_post_has_the_fields_a_button_and_the_nonce() {
        let themes = Themes::load(None).unwrap();
        let html = form_post(&themes, "default");
        assert!(html.contains(r#"<form method="post" action="https://app.example/callback">"#), "{html}");
        for field in &FIELDS {
            let input = format!(r#"<input type="hidden" name="{}" value="{}">"#, field.name, field.value);
            assert!(html.contains(&input), "{input} not in {html}");
        }
        assert!(html.contains(r#"<button type="submit""#), "{html}");
        assert!(html.contains(">Continue</button>"), "{html}");
        assert!(html.contains(r#"<script nonce="n0nce">document.forms[0].submit();</script>"#), "{html}");
        assert_eq!(html.matches("<form").count(), 1, "document.forms[0] must be this form: {html}");
    }

    #[test]
    fn form_post_without_a_nonce_has_no_script() {
        let themes = Themes::load(None).unwrap();
        let page =
            FormPostPage { common: common(), action: "https://app.example/cb", fields: &FIELDS, script_nonce: "" };
        let html = themes.render_form_post("default", &page).unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains(r#"<button type="submit""#), "{html}");
    }

    #[test]
    fn error_page_shows_the_support_id_only_when_given() {
        let themes = Themes::load(None).unwrap();
        let html = error(&themes, "default");
        assert!(html.contains("<title>Sign-in failed · Acme Corp</title>"), "{html}");
        assert!(html.contains("<h1>Sign-in failed</h1>"), "{html}");
        assert!(html.contains("The identity provider refused the sign-in."), "{html}");
        assert!(html.contains("<code>req-42</code>"), "{html}");
        let page = ErrorPage { common: common(), title: "t", message: "m", support_id: None };
        let html = themes.render_error("default", &page).unwrap();
        assert!(!html.contains("reference"), "{html}");
    }

    #[test]
    fn unknown_theme_falls_back_to_default() {
        let dir = override_dir();
        let themes = Themes::load(Some(dir.path())).unwrap();
        assert!(themes.has("default"));
        assert!(!themes.has("keycloak"));
        assert_eq!(login(&themes, "keycloak"), login(&themes, "default"));
        assert_eq!(error(&themes, "keycloak"), error(&themes, "default"));
        assert_eq!(logged_out(&themes, "keycloak"), logged_out(&themes, "default"));
        assert_eq!(logout_confirm(&themes, "keycloak"), logout_confirm(&themes, "default"));
        assert_eq!(form_post(&themes, "keycloak"), form_post(&themes, "default"));
        assert_eq!(themes.static_file("keycloak", "federa.css"), themes.static_file("default", "federa.css"));
    }

    #[test]
    fn a_misspelt_variable_fails_in_strict_mode() {
        let source = include_str!("../../../themes/default/error.hbs").replace("{{message}}", "{{mesage}}");
        let dir = broken_theme("error.hbs", &source);
        // At render time...
        let theme = Theme::load("broken", Some(&dir.path().join("broken"))).unwrap();
        let page = ErrorPage { common: common(), title: "t", message: "m", support_id: None };
        let err = theme.render("broken", ERROR, &page).unwrap_err();
        assert!(matches!(&err, PageError::Template(m) if m.contains("mesage")), "{err}");
        // ...and so already when the themes are loaded.
        let err = Themes::load(Some(dir.path())).unwrap_err();
        assert!(matches!(&err, PageError::Template(m) if m.contains("broken") && m.contains("mesage")), "{err}");
    }

    #[test]
    fn a_misspelt_condition_fails_in_strict_mode() {
        let source =
            include_str!("../../../themes/default/error.hbs").replace("{{#if support_id}}", "{{#if suport_id}}");
        let dir = broken_theme("error.hbs", &source);
        let err = Themes::load(Some(dir.path())).unwrap_err();
        assert!(matches!(&err, PageError::Template(m) if m.contains("suport_id")), "{err}");
    }

    #[test]
    fn a_misspelt_partial_fails() {
        let dir = broken_theme("logged-out.hbs", "{{#*inline \"title\"}}x{{/inline}}{{> layuot}}");
        let err = Themes::load(Some(dir.path())).unwrap_err();
        assert!(matches!(&err, PageError::Template(m) if m.contains("logged-out")), "{err}");
    }

    #[test]
    fn a_template_that_does_not_parse_fails() {
        let dir = broken_theme("login.hbs", "{{#if providers}}unclosed");
        let err = Themes::load(Some(dir.path())).unwrap_err();
        assert!(matches!(&err, PageError::Template(m) if m.contains("login.hbs")), "{err}");
    }

    #[test]
    fn a_missing_override_folder_fails() {
        let dir = tempfile::tempdir().unwrap();
        let err = Themes::load(Some(&dir.path().join("nope"))).unwrap_err();
        assert!(matches!(err, PageError::Io(_)), "{err}");
    }

    #[test]
    fn a_default_folder_overrides_the_built_in_theme() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("default")).unwrap();
        let source = include_str!("../../../themes/default/logged-out.hbs").replace("You are signed out", "Goodbye");
        fs::write(dir.path().join("default").join("logged-out.hbs"), source).unwrap();
        let themes = Themes::load(Some(dir.path())).unwrap();
        assert!(logged_out(&themes, "default").contains("<h1>Goodbye</h1>"));
        assert!(logged_out(&themes, "keycloak").contains("<h1>Goodbye</h1>"));
    }

    #[test]
    fn federa_css_is_served_as_css() {
        let themes = Themes::load(None).unwrap();
        let (content_type, css) = themes.static_file("default", "federa.css").unwrap();
        assert_eq!(content_type, "text/css");
        let css = String::from_utf8(css).unwrap();
        assert!(css.contains(":focus-visible"), "{css}");
        assert!(css.contains("@media (min-width"), "{css}");
        assert!(themes.static_file("default", "nope.css").is_none());
        assert!(themes.static_file("default", "../login.hbs").is_none());
        assert!(themes.static_file("default", "static/federa.css").is_none());
    }

    #[test]
    fn a_theme_may_override_the_stylesheet() {
        let dir = override_dir();
        fs::create_dir(dir.path().join("custom").join("static")).unwrap();
        fs::write(dir.path().join("custom").join("static").join("federa.css"), "body { color: red; }").unwrap();
        let themes = Themes::load(Some(dir.path())).unwrap();
        assert_eq!(themes.static_file("custom", "federa.css"), Some(("text/css", b"body { color: red; }".to_vec())));
        let (_, css) = themes.static_file("default", "federa.css").unwrap();
        assert_ne!(css, b"body { color: red; }");
    }
}
