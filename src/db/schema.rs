//! Table definitions shared by both backends; only types both support.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        email -> Text,
        first_name -> Text,
        last_name -> Text,
        phone -> Nullable<Text>,
        company -> Nullable<Text>,
        date_of_birth -> Date,
        password_hash -> Text,
        status -> Text,
        email_verified_at -> Nullable<Timestamp>,
        terms_version -> Text,
        terms_accepted_at -> Timestamp,
        last_sign_in_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    role_grants (id) {
        id -> BigInt,
        user_id -> BigInt,
        role -> Text,
        scope -> Text,
        granted_by -> Nullable<BigInt>,
        granted_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> BigInt,
        remember -> Bool,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    account_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        purpose -> Text,
        token_hash -> Text,
        new_email -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    parental_consents (id) {
        id -> BigInt,
        user_id -> BigInt,
        parent_email -> Text,
        parent_name -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        kind -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        max_attempts -> Integer,
        run_at -> Timestamp,
        locked_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(role_grants -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(account_tokens -> users (user_id));
diesel::joinable!(parental_consents -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(users, role_grants, sessions, account_tokens, parental_consents, jobs,);
