//! The configuration read from the environment, in a process of its own: the
//! jail sets variables and changes directory, which must race no other test.

use rocket::figment::Jail;

#[test]
#[allow(clippy::result_large_err)] // the jail's closure returns figment's own error type
fn a_phone_number_in_the_environment_is_text() {
    Jail::expect_with(|jail| {
        // As an operator writes it: the leading '+' would make it an integer.
        jail.set_env("LYCEUM_TWILIO_FROM", "+15005550006");
        let config = lyceum::config::Config::load().map_err(|e| e.to_string())?;
        assert_eq!(config.twilio_from.as_deref(), Some("+15005550006"));
        jail.set_env("LYCEUM_TWILIO_AUTH_TOKEN", "0123456789");
        let config = lyceum::config::Config::load().map_err(|e| e.to_string())?;
        assert_eq!(config.twilio_auth_token.as_deref(), Some("0123456789"), "leading zeros kept");

        // The former workaround, quoted twice, still reads the same.
        jail.set_env("LYCEUM_TWILIO_FROM", "\"+15005550006\"");
        let config = lyceum::config::Config::load().map_err(|e| e.to_string())?;
        assert_eq!(config.twilio_from.as_deref(), Some("+15005550006"));

        // Other settings keep their types from the environment.
        jail.set_env("LYCEUM_SURVEY_MIN_GROUP", "12");
        let config = lyceum::config::Config::load().map_err(|e| e.to_string())?;
        assert_eq!(config.survey_min_group, 12);
        Ok(())
    });
}
