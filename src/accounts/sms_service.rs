//! The SMS service's side of codes by text (ACC-5): the inbound webhook its
//! replies reach (Twilio's signature checked; STOP, HELP and START), and the
//! outbox of texts kept instead of sent, which staff read when no service is
//! configured.

use rocket::{State, get, post};

use super::sms::{self, Sms};
use super::twofactor;
use super::views;
use crate::config::Config;
use crate::db::{Db, now};
use crate::web::{AppError, AppResult, ClientInfo, Page};

/// The inbound webhook of the SMS service: STOP, HELP and START.
#[post("/sms/inbound", data = "<form>")]
pub async fn inbound(
    db: &State<Db>,
    sms: &State<Sms>,
    config: &State<Config>,
    signature: TwilioSignature,
    form: rocket::form::Form<std::collections::HashMap<String, String>>,
) -> AppResult<(rocket::http::ContentType, String)> {
    let fields: Vec<(String, String)> = form.into_inner().into_iter().collect();
    let url = format!("{}/sms/inbound", config.base_url());
    match sms.sender.verify_inbound(signature.0.as_deref(), &url, &fields) {
        None => return Err(AppError::NotFound),
        Some(false) => return Err(AppError::Forbidden("The request signature does not match.".into())),
        Some(true) => {}
    }
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let (from, word) = (sms::normalise_phone(&get("From")), sms::keyword(&get("Body")));
    let keys = sms.inner().clone();
    if let Some(phone) = from {
        db.run(move |conn| {
            let t = now();
            let ids = sms::reply(conn, &keys, &phone, word, t)?;
            let kind = match word {
                sms::Keyword::Stop => Some("text_consent_withdrawn"),
                sms::Keyword::Start => Some("texts_allowed_again"),
                _ => None,
            };
            if let Some(kind) = kind {
                for id in ids {
                    twofactor::record(conn, id, kind, Some("by a reply to our texts"), &ClientInfo::default(), t)?;
                }
            }
            Ok::<_, AppError>(())
        })
        .await?;
    }
    let answer = match word {
        sms::Keyword::Stop => Some(sms::STOP_TEXT),
        sms::Keyword::Help => Some(sms::HELP_TEXT),
        sms::Keyword::Start => Some(sms::START_TEXT),
        sms::Keyword::Other => None,
    };
    let xml = match answer {
        Some(text) => {
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{text}</Message></Response>")
        }
        None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_string(),
    };
    Ok((rocket::http::ContentType::XML, xml))
}

/// The header Twilio signs its requests in.
pub struct TwilioSignature(Option<String>);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for TwilioSignature {
    type Error = ();
    async fn from_request(req: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, ()> {
        rocket::request::Outcome::Success(TwilioSignature(
            req.headers().get_one("X-Twilio-Signature").map(str::to_string),
        ))
    }
}

/// Texts kept instead of sent (no SMS service configured), for staff.
#[get("/staff/texts")]
pub async fn staff_outbox(
    db: &State<Db>,
    sms: &State<Sms>,
    _staff: crate::web::StaffUser,
    trail: crate::web::trail::Trail<'_>,
) -> AppResult<Page> {
    let live = sms.live;
    let texts = db.run(|conn| Ok::<_, AppError>(sms::outbox(conn, 100)?)).await?;
    // Kept texts carry a number and no account: whose they were is the
    // account that registered the number, when it still does.
    let numbers: Vec<String> = texts.iter().map(|(to, ..)| to.clone()).collect();
    let sms = sms.inner().clone();
    trail.users(db.run(move |conn| Ok::<_, AppError>(sms::owners_of(conn, &sms, &numbers)?)).await?);
    let texts = texts.into_iter().map(|(to, body, at)| views::KeptText { to, body, at: at.into() }).collect();
    Ok(Page::view("accounts/texts", "Text messages", views::Texts { live, texts }))
}
