//! The dashboard's shared markup: the page layout, form fields with their errors, icons, money.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use shared::{ContentType, Platform};

use super::session::Session;
use crate::money::Money;
use crate::reports::DayTotals;
use crate::revenue::add_money;

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Links,
    Attribution,
    Creators,
    Campaigns,
    Domains,
    Webhooks,
}

/// A page of the signed-in dashboard.
pub fn page(title: &str, session: &Session, section: Section, content: Markup) -> Markup {
    let nav_item = |target: Section, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(section == target).then_some("page")] { (label) } }
        }
    };
    shell(
        title,
        html! {
            header.top {
                a.brand-mark href="/brand/attribution/links" { "Tracking Links" }
                nav aria-label="Dashboard" {
                    ul {
                        (nav_item(Section::Attribution, "/brand/attribution", "Attribution"))
                        (nav_item(Section::Links, "/brand/attribution/links", "Tracking Links"))
                        (nav_item(Section::Creators, "/brand/creators", "Creators"))
                        (nav_item(Section::Campaigns, "/brand/campaigns", "Campaigns"))
                        (nav_item(Section::Domains, "/brand/domains", "Domains"))
                        (nav_item(Section::Webhooks, "/brand/webhooks", "Webhooks"))
                    }
                }
                form.sign-out method="post" action="/brand/sign-out" {
                    (csrf_field(&session.csrf))
                    span.who { (session.email) }
                    button.link-button type="submit" { "Sign out" }
                }
            }
            main id="main" { (content) }
            // Announcements for screen readers and everyone (copy confirmations).
            p.toast id="status" role="status" aria-live="polite" {}
        },
    )
}

/// The document around any page, signed in or not.
pub fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tracking Links" }
                link rel="stylesheet" href="/static/dashboard.css";
                script src="/static/dashboard.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (body)
            }
        }
    }
}

/// A page for requests that could not be answered (signed in or not, the layout is the bare one).
pub fn error_page(title: &str, message: &str) -> Markup {
    shell(
        title,
        html! {
            main.narrow id="main" {
                h1 { (title) }
                p { (message) }
                p { a href="/brand/attribution/links" { "Back to the dashboard" } }
            }
        },
    )
}

/// The email and password fields of a sign-in form.
pub fn sign_in_fields(email: &str) -> Markup {
    html! {
        (text_field("email", "Email", email, None, FieldAttrs {
            kind: "email", required: true, autocomplete: Some("username"), ..FieldAttrs::text()
        }))
        (text_field("password", "Password", "", None, FieldAttrs {
            kind: "password", required: true, autocomplete: Some("current-password"), ..FieldAttrs::text()
        }))
    }
}

/// A sign-in page (the dashboard's or the creators' portal's).
pub struct SignInPage<'a> {
    pub title: &'a str,
    pub heading: &'a str,
    /// Where the form posts.
    pub action: &'a str,
    /// The form's double-submit token.
    pub token: &'a str,
    pub email: &'a str,
    pub next: Option<&'a str>,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    pub hint: Option<&'a str>,
}

pub fn sign_in_page(page: SignInPage<'_>) -> Markup {
    shell(
        page.title,
        html! {
            main.narrow id="main" {
                h1 { (page.heading) }
                @if let Some(notice) = page.notice { p.notice role="status" { (notice) } }
                @if let Some(error) = page.error { p.error-summary role="alert" { (error) } }
                form method="post" action=(page.action) {
                    (csrf_field(page.token))
                    @if let Some(next) = page.next { input type="hidden" name="next" value=(next); }
                    (sign_in_fields(page.email))
                    button.primary type="submit" { "Sign in" }
                }
                @if let Some(hint) = page.hint { p.hint { (hint) } }
            }
        },
    )
}

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A labelled text input, its error (announced and tied to it) and what was typed.
pub fn text_field(name: &str, label: &str, value: &str, error: Option<&str>, attrs: FieldAttrs<'_>) -> Markup {
    let error_id = format!("{name}-error");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(name) { (label) @if attrs.required { " " span.req aria-hidden="true" { "*" } } }
            @if let Some(hint) = attrs.hint { p.hint id=(format!("{name}-hint")) { (hint) } }
            input id=(name) name=(name) type=(attrs.kind) value=(value) required[attrs.required]
                autocomplete=[attrs.autocomplete] inputmode=[attrs.inputmode] maxlength=[attrs.maxlength]
                aria-invalid=[error.is_some().then_some("true")]
                aria-describedby=[error.is_some().then_some(error_id.as_str())];
            @if let Some(error) = error { p.error id=(error_id) { (error) } }
        }
    }
}

/// The optional attributes of a [`text_field`].
#[derive(Default, Clone, Copy)]
pub struct FieldAttrs<'a> {
    pub kind: &'a str,
    pub required: bool,
    pub hint: Option<&'a str>,
    pub autocomplete: Option<&'a str>,
    pub inputmode: Option<&'a str>,
    pub maxlength: Option<usize>,
}

impl<'a> FieldAttrs<'a> {
    pub fn text() -> Self {
        FieldAttrs { kind: "text", ..Default::default() }
    }
}

/// A labelled `<select>` with a first "none" option, its error and the current choice.
pub fn select_field(
    name: &str,
    label: &str,
    none: &str,
    options: &[(String, String)],
    selected: &str,
    error: Option<&str>,
) -> Markup {
    let error_id = format!("{name}-error");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(name) { (label) }
            select id=(name) name=(name) aria-invalid=[error.is_some().then_some("true")]
                aria-describedby=[error.is_some().then_some(error_id.as_str())] {
                option value="" { (none) }
                @for (value, text) in options {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
            @if let Some(error) = error { p.error id=(error_id) { (error) } }
        }
    }
}

pub fn platform_label(p: Platform) -> &'static str {
    match p {
        Platform::Instagram => "Instagram",
        Platform::Tiktok => "TikTok",
        Platform::Youtube => "YouTube",
        Platform::X => "X",
        Platform::Facebook => "Facebook",
        Platform::Linkedin => "LinkedIn",
    }
}

pub fn content_type_label(c: ContentType) -> &'static str {
    match c {
        ContentType::SponsoredPost => "Sponsored Post",
        ContentType::Story => "Story",
        ContentType::Reel => "Reel",
        ContentType::Video => "Video",
        ContentType::BioLink => "Bio Link",
        ContentType::Affiliate => "Affiliate",
    }
}

/// `129.99 USD`: minor units written with the currency's own number of decimals.
pub fn money(m: &Money) -> String {
    format!("{} {}", m.decimal(), m.currency)
}

/// Several currencies on one line, or a dash for none.
pub fn moneys(list: &[Money]) -> String {
    if list.is_empty() {
        "—".to_owned()
    } else {
        list.iter().map(money).collect::<Vec<_>>().join(", ")
    }
}

pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// The copy button beside a short URL: hidden until the script can make it work.
pub fn copy_button(url: &str, what: &str) -> Markup {
    html! {
        button.icon-button.copy type="button" data-copy=(url) hidden aria-label=(format!("Copy {what}")) title="Copy" {
            (PreEscaped(COPY_ICON))
        }
    }
}

pub const COPY_ICON: &str = r#"<svg aria-hidden="true" focusable="false" width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><rect x="9" y="9" width="13" height="13" rx="2"/><path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"/></svg>"#;

pub const TRASH_ICON: &str = r#"<svg aria-hidden="true" focusable="false" width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M3 6h18"/><path d="M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2"/><path d="M19 6l-1 14a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2L5 6"/><path d="M10 11v6M14 11v6"/></svg>"#;

/// Clicks per day as bars, revenue (in the period's main currency) as a line on its own scale: inline
/// SVG drawn on the server, with the figures in a table for screen readers and for exact values.
pub fn chart(days: &[NaiveDate], per_day: &BTreeMap<NaiveDate, DayTotals>) -> Markup {
    const W: f64 = 720.0;
    const H: f64 = 200.0;
    const PAD: f64 = 24.0;
    let mut currencies: Vec<Money> = Vec::new();
    for totals in per_day.values() {
        for m in &totals.figures.revenue {
            add_money(&mut currencies, &m.currency, m.amount_minor);
        }
    }
    let currency = currencies.iter().max_by_key(|m| m.amount_minor).map(|m| m.currency.clone());
    let revenue_of = |day: &NaiveDate| -> i64 {
        let revenue = per_day.get(day).map(|t| t.figures.revenue.as_slice()).unwrap_or_default();
        revenue.iter().filter(|m| Some(&m.currency) == currency.as_ref()).map(|m| m.amount_minor).sum()
    };
    let clicks_of = |day: &NaiveDate| per_day.get(day).map_or(0, |t| t.clicks);
    let max_clicks = days.iter().map(clicks_of).max().unwrap_or(0).max(1) as f64;
    let max_revenue = days.iter().map(revenue_of).max().unwrap_or(0).max(1) as f64;
    let slot = (W - 2.0 * PAD) / days.len().max(1) as f64;
    let x = |i: usize| PAD + slot * i as f64;
    let line: Vec<String> = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            format!("{:.1},{:.1}", x(i) + slot / 2.0, H - PAD - (H - 2.0 * PAD) * revenue_of(d) as f64 / max_revenue)
        })
        .collect();
    let summary = format!(
        "Clicks per day (bars, up to {}) and revenue per day in {} (line)",
        max_clicks as i64,
        currency.as_deref().unwrap_or("any currency")
    );
    let label_y = H - PAD + 16.0;
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(summary) {
                title { (summary) }
                line x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) stroke="#6b7280" stroke-width="1" {}
                @for (i, d) in days.iter().enumerate() {
                    @let height = (H - 2.0 * PAD) * clicks_of(d) as f64 / max_clicks;
                    rect x=(format!("{:.1}", x(i) + slot * 0.15)) y=(format!("{:.1}", H - PAD - height))
                        width=(format!("{:.1}", slot * 0.7)) height=(format!("{:.1}", height)) fill="#2563eb" {
                        title { (d) ": " (clicks_of(d)) " clicks" }
                    }
                }
                @if currency.is_some() {
                    polyline points=(line.join(" ")) fill="none" stroke="#b45309" stroke-width="2.5" {}
                }
                text x=(PAD) y="14" font-size="12" fill="#1d4ed8" { (max_clicks as i64) " clicks" }
                @if let Some(c) = &currency {
                    text x=(W - PAD) y="14" font-size="12" fill="#92400e" text-anchor="end" {
                        (money(&Money { amount_minor: max_revenue as i64, currency: c.clone() }))
                    }
                }
                @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                    text x=(PAD) y=(label_y) font-size="12" fill="#374151" { (first.format("%b %-d")) }
                    text x=(W - PAD) y=(label_y) font-size="12" fill="#374151" text-anchor="end" { (last.format("%b %-d")) }
                }
            }
            figcaption {
                span.legend.clicks { "Clicks" }
                @if let Some(c) = &currency { span.legend.revenue { "Revenue (" (c) ")" } }
            }
            details {
                summary { "Daily figures" }
                div.table-scroll {
                    table {
                        thead { tr { th scope="col" { "Day" } th.num scope="col" { "Clicks" } th.num scope="col" { "Revenue" } } }
                        tbody {
                            @for d in days {
                                tr {
                                    th scope="row" { (d) }
                                    td.num { (clicks_of(d)) }
                                    td.num { (moneys(per_day.get(d).map(|t| t.figures.revenue.as_slice()).unwrap_or_default())) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_with_the_currency_decimals() {
        let m = |amount_minor, currency: &str| money(&Money { amount_minor, currency: currency.to_owned() });
        assert_eq!(m(12999, "USD"), "129.99 USD");
        assert_eq!(m(5, "EUR"), "0.05 EUR");
        assert_eq!(m(1500, "JPY"), "1500 JPY");
        assert_eq!(m(1234, "BHD"), "1.234 BHD");
    }
}
