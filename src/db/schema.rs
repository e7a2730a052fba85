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
        date_of_birth -> Nullable<Date>,
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
        second_factor_at -> Nullable<Timestamp>,
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

diesel::table! {
    sign_in_guesses (user_id) {
        user_id -> BigInt,
        password_failures -> Integer,
        password_wait_until -> Nullable<Timestamp>,
        code_failures -> Integer,
        code_window_from -> Nullable<Timestamp>,
        notified_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(sign_in_guesses -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(users, role_grants, sessions, account_tokens, parental_consents, jobs,);

diesel::table! {
    members (id) {
        id -> BigInt,
        slug -> Text,
        name -> Text,
        description -> Text,
        logo_blob -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    courses (id) {
        id -> BigInt,
        member_id -> BigInt,
        slug -> Text,
        title -> Text,
        summary -> Text,
        description -> Text,
        subjects -> Text,
        language -> Text,
        effort -> Nullable<Text>,
        image_blob -> Nullable<Text>,
        published -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    course_runs (id) {
        id -> BigInt,
        course_id -> BigInt,
        run_key -> Text,
        starts_at -> Timestamp,
        ends_at -> Nullable<Timestamp>,
        enrollment_opens_at -> Nullable<Timestamp>,
        enrollment_closes_at -> Nullable<Timestamp>,
        pacing -> Text,
        access_days -> Nullable<Integer>,
        pass_threshold -> Integer,
        audit -> Bool,
        verified_price_cents -> Nullable<Integer>,
        currency -> Text,
        reminder_sent_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sections (id) {
        id -> BigInt,
        course_id -> BigInt,
        position -> Integer,
        title -> Text,
    }
}

diesel::table! {
    units (id) {
        id -> BigInt,
        section_id -> BigInt,
        position -> Integer,
        title -> Text,
    }
}

diesel::table! {
    blocks (id) {
        id -> BigInt,
        unit_id -> BigInt,
        position -> Integer,
        kind -> Text,
        data -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    blob_files (key) {
        key -> Text,
        content_type -> Text,
        size -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    enrollments (id) {
        id -> BigInt,
        user_id -> BigInt,
        run_id -> BigInt,
        track -> Text,
        status -> Text,
        enrolled_at -> Timestamp,
        access_expires_at -> Nullable<Timestamp>,
        unenrolled_at -> Nullable<Timestamp>,
        grade_percent -> Double,
        passed -> Bool,
        completed_at -> Nullable<Timestamp>,
        last_activity_at -> Nullable<Timestamp>,
        last_unit_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    unit_completions (id) {
        id -> BigInt,
        enrollment_id -> BigInt,
        unit_id -> BigInt,
        completed_at -> Timestamp,
    }
}

diesel::table! {
    quiz_attempts (id) {
        id -> BigInt,
        enrollment_id -> BigInt,
        block_id -> BigInt,
        attempt -> Integer,
        answers -> Text,
        score -> Double,
        submitted_at -> Timestamp,
    }
}

diesel::table! {
    live_attendance (id) {
        id -> BigInt,
        enrollment_id -> BigInt,
        block_id -> BigInt,
        joined_at -> Timestamp,
    }
}

diesel::table! {
    course_feedback (id) {
        id -> BigInt,
        user_id -> BigInt,
        course_id -> BigInt,
        rating -> Integer,
        comment -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    announcements (id) {
        id -> BigInt,
        run_id -> BigInt,
        author_id -> Nullable<BigInt>,
        subject -> Text,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(courses -> members (member_id));
diesel::joinable!(course_runs -> courses (course_id));
diesel::joinable!(sections -> courses (course_id));
diesel::joinable!(units -> sections (section_id));
diesel::joinable!(blocks -> units (unit_id));
diesel::joinable!(enrollments -> course_runs (run_id));
diesel::joinable!(enrollments -> users (user_id));
diesel::joinable!(unit_completions -> enrollments (enrollment_id));
diesel::joinable!(quiz_attempts -> enrollments (enrollment_id));
diesel::joinable!(live_attendance -> enrollments (enrollment_id));
diesel::joinable!(course_feedback -> courses (course_id));
diesel::joinable!(announcements -> course_runs (run_id));

// Sharing: partners, consent ledger, disclosure manifests, sponsorships.

diesel::table! {
    partners (id) {
        id -> BigInt,
        kind -> Text,
        slug -> Text,
        name -> Text,
        member_id -> Nullable<BigInt>,
        contact_email -> Text,
        profile_fields -> Text,
        pseudonym_salt -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    partner_api_keys (id) {
        id -> BigInt,
        partner_id -> BigInt,
        name -> Text,
        prefix -> Text,
        secret_hash -> Text,
        scopes -> Text,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    consent_texts (id) {
        id -> BigInt,
        partner_id -> Nullable<BigInt>,
        partner_kind -> Nullable<Text>,
        purpose -> Text,
        locale -> Text,
        version -> Integer,
        body -> Text,
        sha256 -> Text,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    consent_ledger (id) {
        id -> BigInt,
        user_id -> BigInt,
        partner_id -> Nullable<BigInt>,
        purpose -> Text,
        scope -> Text,
        action -> Text,
        categories -> Text,
        text_id -> Nullable<BigInt>,
        text_version -> Nullable<Integer>,
        text_sha256 -> Nullable<Text>,
        method -> Text,
        actor -> Text,
        actor_user_id -> Nullable<BigInt>,
        actor_name -> Nullable<Text>,
        note -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
        prev_hash -> Text,
        row_hash -> Text,
        row_mac -> Nullable<Text>,
    }
}

diesel::table! {
    consents (id) {
        id -> BigInt,
        user_id -> BigInt,
        partner_id -> BigInt,
        purpose -> Text,
        scope -> Text,
        status -> Text,
        categories -> Text,
        ledger_id -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sharing_restrictions (user_id) {
        user_id -> BigInt,
        ledger_id -> BigInt,
        since -> Timestamp,
    }
}

diesel::table! {
    manifests (id) {
        id -> BigInt,
        partner_id -> Nullable<BigInt>,
        recipient -> Text,
        purpose -> Text,
        basis -> Text,
        fields -> Text,
        record_kind -> Text,
        export_id -> Text,
        part -> BigInt,
        state -> Text,
        created_at -> Timestamp,
        sha256 -> Nullable<Text>,
        ledger_head -> BigInt,
        pinned -> Nullable<Text>,
        legal_reference -> Nullable<Text>,
        note -> Nullable<Text>,
        recorded_by -> Nullable<BigInt>,
        learners -> Binary,
        records -> Binary,
        user_min -> BigInt,
        user_max -> BigInt,
        record_min -> BigInt,
        record_max -> BigInt,
        entries -> BigInt,
        erased -> BigInt,
        set_digest -> Text,
        erased_digest -> Text,
        prev_hash -> Text,
        hash -> Text,
        mac -> Nullable<Text>,
        user_span -> SmallInt,
    }
}

diesel::table! {
    sponsor_allocations (id) {
        id -> BigInt,
        partner_id -> BigInt,
        run_id -> BigInt,
        seats -> Integer,
        expires_at -> Timestamp,
        note -> Text,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sponsor_codes (id) {
        id -> BigInt,
        allocation_id -> BigInt,
        code -> Text,
        invited_email -> Nullable<Text>,
        invited_at -> Nullable<Timestamp>,
        redeemed_by -> Nullable<BigInt>,
        redeemed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sponsorships (id) {
        id -> BigInt,
        partner_id -> BigInt,
        user_id -> BigInt,
        run_id -> BigInt,
        code_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::joinable!(partners -> members (member_id));
diesel::joinable!(partner_api_keys -> partners (partner_id));
diesel::joinable!(consents -> partners (partner_id));
diesel::joinable!(consents -> users (user_id));
diesel::joinable!(sponsor_allocations -> partners (partner_id));
diesel::joinable!(sponsor_allocations -> course_runs (run_id));
diesel::joinable!(sponsor_codes -> sponsor_allocations (allocation_id));
diesel::joinable!(sponsorships -> partners (partner_id));
diesel::joinable!(sponsorships -> course_runs (run_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    members,
    partners,
    partner_api_keys,
    consent_texts,
    consent_ledger,
    consents,
    sharing_restrictions,
    manifests,
    sponsor_allocations,
    sponsor_codes,
    sponsorships,
    courses,
    course_runs,
    sections,
    units,
    blocks,
    enrollments,
    unit_completions,
    quiz_attempts,
    live_attendance,
    course_feedback,
    announcements,
    blob_files,
);

diesel::table! {
    partner_destinations (id) {
        id -> BigInt,
        partner_id -> BigInt,
        name -> Text,
        kind -> Text,
        record_kind -> Text,
        format -> Text,
        target -> Text,
        secret -> Text,
        every_minutes -> Integer,
        next_run_at -> Timestamp,
        enabled -> Bool,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        departures_sent -> BigInt,
    }
}

diesel::table! {
    partner_sends (id) {
        id -> BigInt,
        destination_id -> BigInt,
        idempotency_key -> Text,
        job_id -> Nullable<BigInt>,
        trigger -> Text,
        requested_by -> Nullable<BigInt>,
        payload_digest -> Nullable<Text>,
        record_count -> Nullable<Integer>,
        location -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        departures_from -> Nullable<BigInt>,
        departures_to -> Nullable<BigInt>,
    }
}

diesel::table! {
    departures (id) {
        id -> BigInt,
        partner_id -> BigInt,
        user_id -> BigInt,
        enrollment_id -> BigInt,
        run_id -> BigInt,
        learner_id -> Text,
        learner_gone -> Bool,
        reason -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    partner_statements (destination_id, statement_id) {
        destination_id -> BigInt,
        statement_id -> Text,
        enrollment_id -> BigInt,
        learner_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    partner_send_rejections (id) {
        id -> BigInt,
        send_id -> BigInt,
        statement_id -> Text,
        status -> Integer,
        message -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(partner_destinations -> partners (partner_id));
diesel::joinable!(partner_sends -> partner_destinations (destination_id));
diesel::joinable!(partner_sends -> jobs (job_id));
diesel::joinable!(partner_send_rejections -> partner_sends (send_id));

diesel::allow_tables_to_appear_in_same_query!(partner_destinations, partner_sends, jobs);
diesel::allow_tables_to_appear_in_same_query!(partner_send_rejections, partner_sends);
diesel::allow_tables_to_appear_in_same_query!(partners, partner_destinations);
diesel::allow_tables_to_appear_in_same_query!(partners, partner_sends);
diesel::allow_tables_to_appear_in_same_query!(partners, jobs);
diesel::joinable!(departures -> partners (partner_id));
diesel::joinable!(departures -> course_runs (run_id));
diesel::allow_tables_to_appear_in_same_query!(departures, partners);
diesel::allow_tables_to_appear_in_same_query!(departures, course_runs);
diesel::allow_tables_to_appear_in_same_query!(departures, courses);
diesel::allow_tables_to_appear_in_same_query!(departures, members);

// The partner pull API's export summaries: what each export sent, or that it
// did not finish (no learner data).
diesel::table! {
    export_summaries (export_id) {
        export_id -> Text,
        partner_id -> BigInt,
        kind -> Text,
        format -> Text,
        status -> Text,
        records -> BigInt,
        bytes -> BigInt,
        sha256 -> Nullable<Text>,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(export_summaries -> partners (partner_id));
diesel::allow_tables_to_appear_in_same_query!(partners, export_summaries);

diesel::table! {
    parent_sharing_requests (id) {
        id -> BigInt,
        user_id -> BigInt,
        partner_id -> BigInt,
        purpose -> Text,
        scope -> Text,
        categories -> Text,
        text_id -> BigInt,
        parent_email -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        decision -> Nullable<Text>,
    }
}

diesel::joinable!(parent_sharing_requests -> partners (partner_id));
diesel::joinable!(parent_sharing_requests -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(parent_sharing_requests, partners);
diesel::allow_tables_to_appear_in_same_query!(parent_sharing_requests, users);

diesel::table! {
    forums (id) {
        id -> BigInt,
        slug -> Text,
        title -> Text,
        description -> Text,
        run_id -> Nullable<BigInt>,
        allow_anonymous -> Bool,
        position -> Integer,
        created_at -> Timestamp,
    }
}

diesel::table! {
    forum_threads (id) {
        id -> BigInt,
        forum_id -> BigInt,
        title -> Text,
        pinned -> Bool,
        locked -> Bool,
        lock_reason -> Nullable<Text>,
        last_post_at -> Timestamp,
        created_at -> Timestamp,
        version -> BigInt,
    }
}

diesel::table! {
    forum_posts (id) {
        id -> BigInt,
        thread_id -> BigInt,
        parent_id -> Nullable<BigInt>,
        author_id -> BigInt,
        anonymous -> Bool,
        author_erased -> Bool,
        body -> Text,
        body_html -> Text,
        status -> Text,
        endorsed -> Bool,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
        edited_at -> Nullable<Timestamp>,
        vote_count -> BigInt,
    }
}

diesel::table! {
    forum_attachments (id) {
        id -> BigInt,
        post_id -> BigInt,
        blob_key -> Text,
        content_type -> Text,
        width -> Integer,
        height -> Integer,
        alt -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    forum_post_edits (id) {
        id -> BigInt,
        post_id -> BigInt,
        editor_id -> Nullable<BigInt>,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    forum_votes (post_id, user_id) {
        post_id -> BigInt,
        user_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    forum_trusted (user_id) {
        user_id -> BigInt,
        approved_by -> Nullable<BigInt>,
        approved_at -> Timestamp,
    }
}

diesel::table! {
    forum_reports (id) {
        id -> BigInt,
        post_id -> BigInt,
        reporter_id -> BigInt,
        reason -> Text,
        status -> Text,
        decided_by -> Nullable<BigInt>,
        decided_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    forum_bans (forum_id, user_id) {
        forum_id -> BigInt,
        user_id -> BigInt,
        reason -> Text,
        banned_by -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(forum_threads -> forums (forum_id));
diesel::joinable!(forum_posts -> forum_threads (thread_id));
diesel::joinable!(forum_posts -> users (author_id));
diesel::joinable!(forum_reports -> forum_posts (post_id));
diesel::joinable!(forum_votes -> forum_posts (post_id));
diesel::joinable!(forum_attachments -> forum_posts (post_id));
diesel::joinable!(forums -> course_runs (run_id));

diesel::allow_tables_to_appear_in_same_query!(
    forums,
    forum_threads,
    forum_posts,
    forum_post_edits,
    forum_attachments,
    forum_votes,
    forum_trusted,
    forum_reports,
    forum_bans,
);
diesel::allow_tables_to_appear_in_same_query!(forums, users);
diesel::allow_tables_to_appear_in_same_query!(forum_threads, users);
diesel::allow_tables_to_appear_in_same_query!(forum_posts, users);
diesel::allow_tables_to_appear_in_same_query!(forum_reports, users);
diesel::allow_tables_to_appear_in_same_query!(forums, course_runs);
diesel::allow_tables_to_appear_in_same_query!(forums, courses);
diesel::allow_tables_to_appear_in_same_query!(forum_bans, course_runs);
diesel::allow_tables_to_appear_in_same_query!(forum_bans, courses);
// A thread page reads the forum, the viewer's standing in it and the thread in one query.
diesel::allow_tables_to_appear_in_same_query!(enrollments, forums);
diesel::allow_tables_to_appear_in_same_query!(enrollments, forum_bans);
diesel::allow_tables_to_appear_in_same_query!(enrollments, forum_threads);
diesel::allow_tables_to_appear_in_same_query!(enrollments, forum_follows);
diesel::allow_tables_to_appear_in_same_query!(enrollments, forum_reads);
diesel::allow_tables_to_appear_in_same_query!(forum_follows, forums);
diesel::allow_tables_to_appear_in_same_query!(forum_follows, forum_bans);
diesel::allow_tables_to_appear_in_same_query!(forum_follows, course_runs);
diesel::allow_tables_to_appear_in_same_query!(forum_follows, courses);
diesel::allow_tables_to_appear_in_same_query!(forum_reads, forums);
diesel::allow_tables_to_appear_in_same_query!(forum_reads, forum_bans);
diesel::allow_tables_to_appear_in_same_query!(forum_reads, course_runs);
diesel::allow_tables_to_appear_in_same_query!(forum_reads, courses);
diesel::allow_tables_to_appear_in_same_query!(forum_threads, course_runs);
diesel::allow_tables_to_appear_in_same_query!(forum_threads, courses);
diesel::allow_tables_to_appear_in_same_query!(forum_posts, course_runs);
diesel::allow_tables_to_appear_in_same_query!(forum_posts, courses);

diesel::table! {
    profiles (user_id) {
        user_id -> BigInt,
        bio -> Text,
        avatar_key -> Nullable<Text>,
        visibility -> Text,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(profiles -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(profiles, users);
diesel::allow_tables_to_appear_in_same_query!(profiles, forum_posts);
diesel::allow_tables_to_appear_in_same_query!(forum_votes, users);
diesel::allow_tables_to_appear_in_same_query!(forum_votes, profiles);

diesel::table! {
    honor_reports (id) {
        id -> BigInt,
        course_id -> BigInt,
        subject_id -> BigInt,
        reporter_id -> Nullable<BigInt>,
        kind -> Text,
        description -> Text,
        status -> Text,
        decision_note -> Nullable<Text>,
        decided_by -> Nullable<BigInt>,
        decided_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(honor_reports, users);
diesel::allow_tables_to_appear_in_same_query!(honor_reports, courses);

diesel::table! {
    forum_reads (user_id, thread_id) {
        user_id -> BigInt,
        thread_id -> BigInt,
        last_post_id -> BigInt,
    }
}

diesel::table! {
    forum_follows (user_id, thread_id) {
        user_id -> BigInt,
        thread_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::joinable!(forum_follows -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(forum_follows, users);
diesel::allow_tables_to_appear_in_same_query!(forum_follows, forum_threads);
diesel::allow_tables_to_appear_in_same_query!(forum_reads, forum_threads);
diesel::allow_tables_to_appear_in_same_query!(forum_reads, forum_follows);

diesel::table! {
    data_requests (id) {
        id -> BigInt,
        user_id -> Nullable<BigInt>,
        kind -> Text,
        source -> Text,
        details -> Text,
        status -> Text,
        outcome -> Nullable<Text>,
        entered_by -> Nullable<BigInt>,
        received_at -> Timestamp,
        due_at -> Timestamp,
        done_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    data_exports (id) {
        id -> BigInt,
        request_id -> BigInt,
        user_id -> BigInt,
        status -> Text,
        blob_key -> Nullable<Text>,
        size_bytes -> Nullable<BigInt>,
        sha256 -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        ready_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        downloaded_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    erasures (id) {
        id -> BigInt,
        request_id -> BigInt,
        user_id -> BigInt,
        state -> Text,
        next_step -> Integer,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        run_after -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    erasure_log (id) {
        id -> BigInt,
        erasure_id -> BigInt,
        step -> Text,
        outcome -> Text,
        detail -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    legal_holds (id) {
        id -> BigInt,
        user_id -> BigInt,
        reason -> Text,
        placed_by -> Nullable<BigInt>,
        placed_at -> Timestamp,
        lifted_by -> Nullable<BigInt>,
        lifted_at -> Nullable<Timestamp>,
        lift_reason -> Nullable<Text>,
    }
}

diesel::joinable!(data_exports -> data_requests (request_id));
diesel::joinable!(erasures -> data_requests (request_id));
diesel::joinable!(erasure_log -> erasures (erasure_id));
diesel::allow_tables_to_appear_in_same_query!(data_requests, data_exports, erasures, erasure_log, legal_holds);
diesel::allow_tables_to_appear_in_same_query!(data_requests, users);
diesel::allow_tables_to_appear_in_same_query!(erasures, users);
diesel::allow_tables_to_appear_in_same_query!(legal_holds, users);

diesel::table! {
    inactivity_warnings (user_id) {
        user_id -> BigInt,
        warned_at -> Timestamp,
        delete_after -> Timestamp,
    }
}

diesel::joinable!(inactivity_warnings -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(inactivity_warnings, users);

diesel::table! {
    communication_preferences (user_id) {
        user_id -> BigInt,
        marketing_email -> Bool,
        email_tracking -> Bool,
        object_profiling -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    communication_choices (id) {
        id -> BigInt,
        user_id -> BigInt,
        choice -> Text,
        value -> Bool,
        method -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    campaigns (id) {
        id -> BigInt,
        subject -> Text,
        body -> Text,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        recipients -> Integer,
    }
}

diesel::table! {
    campaign_events (id) {
        id -> BigInt,
        campaign_id -> BigInt,
        user_id -> BigInt,
        kind -> Text,
        url -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(communication_preferences -> users (user_id));
diesel::joinable!(campaign_events -> campaigns (campaign_id));
diesel::allow_tables_to_appear_in_same_query!(communication_preferences, users);
diesel::allow_tables_to_appear_in_same_query!(campaigns, campaign_events);

diesel::table! {
    cookie_choices (id) {
        id -> BigInt,
        visitor -> Text,
        analytics -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    page_views (id) {
        id -> BigInt,
        visitor -> Text,
        path -> Text,
        browser -> Text,
        os -> Text,
        country -> Nullable<Text>,
        created_at -> Timestamp,
    }
}
diesel::allow_tables_to_appear_in_same_query!(page_views, cookie_choices);

diesel::table! {
    policy_versions (id) {
        id -> BigInt,
        kind -> Text,
        version -> Integer,
        body -> Text,
        changes -> Text,
        material -> Bool,
        published_by -> Nullable<BigInt>,
        published_at -> Timestamp,
    }
}

diesel::table! {
    policy_acceptances (id) {
        id -> BigInt,
        user_id -> BigInt,
        policy_id -> BigInt,
        method -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        accepted_at -> Timestamp,
    }
}

diesel::joinable!(policy_acceptances -> policy_versions (policy_id));
diesel::allow_tables_to_appear_in_same_query!(policy_versions, policy_acceptances);

diesel::table! {
    breach_notices (id) {
        id -> BigInt,
        title -> Text,
        body -> Text,
        audience -> Text,
        recipients -> Integer,
        created_by -> Nullable<BigInt>,
        published_at -> Timestamp,
        withdrawn_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    breach_recipients (notice_id, user_id) {
        notice_id -> BigInt,
        user_id -> BigInt,
    }
}

diesel::table! {
    support_requests (id) {
        id -> BigInt,
        user_id -> Nullable<BigInt>,
        name -> Text,
        email -> Text,
        subject -> Text,
        message -> Text,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    support_replies (id) {
        id -> BigInt,
        request_id -> BigInt,
        staff_id -> Nullable<BigInt>,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(support_replies -> support_requests (request_id));
diesel::allow_tables_to_appear_in_same_query!(support_requests, support_replies);
diesel::allow_tables_to_appear_in_same_query!(breach_recipients, users);
diesel::allow_tables_to_appear_in_same_query!(breach_recipients, enrollments);
diesel::allow_tables_to_appear_in_same_query!(support_replies, users);

diesel::table! {
    survey_responses (id) {
        id -> Text,
        run_id -> BigInt,
        rating -> Integer,
        difficulty -> Text,
        recommend -> Bool,
        comment -> Nullable<Text>,
    }
}

diesel::table! {
    survey_pending (run_id) {
        run_id -> BigInt,
        answers -> Text,
    }
}

diesel::table! {
    survey_completions (user_id, run_id) {
        user_id -> BigInt,
        run_id -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        actor_id -> BigInt,
        actor -> Text,
        roles -> Text,
        action -> Text,
        method -> Text,
        path -> Text,
        status -> Integer,
        ip -> Nullable<Text>,
        created_at -> Timestamp,
        declared -> Nullable<Text>,
    }
}

diesel::table! {
    audit_subjects (id) {
        id -> BigInt,
        audit_id -> BigInt,
        user_id -> Nullable<BigInt>,
        partner_id -> Nullable<BigInt>,
        course_id -> Nullable<BigInt>,
        item -> Nullable<Text>,
    }
}

diesel::table! {
    audit_queries (audit_id) {
        audit_id -> BigInt,
        query -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(audit_log, audit_subjects, audit_queries, users);

diesel::table! {
    payments (id) {
        id -> BigInt,
        user_id -> Nullable<BigInt>,
        run_id -> Nullable<BigInt>,
        purpose -> Text,
        partner_id -> Nullable<BigInt>,
        quantity -> Integer,
        provider -> Text,
        checkout_id -> Text,
        payment_ref -> Nullable<Text>,
        amount_cents -> BigInt,
        currency -> Text,
        status -> Text,
        created_at -> Timestamp,
        paid_at -> Nullable<Timestamp>,
        refunded_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    payment_events (event_id) {
        event_id -> Text,
        kind -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    identity_checks (id) {
        id -> BigInt,
        user_id -> BigInt,
        status -> Text,
        id_photo_blob -> Nullable<Text>,
        face_photo_blob -> Nullable<Text>,
        submitted_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        decided_by -> Nullable<BigInt>,
        reason -> Nullable<Text>,
        valid_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    assistance_applications (id) {
        id -> BigInt,
        user_id -> BigInt,
        run_id -> BigInt,
        reason -> Text,
        circumstances -> Text,
        goals -> Text,
        status -> Text,
        submitted_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        decided_by -> Nullable<BigInt>,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    certificates (id) {
        id -> BigInt,
        code -> Text,
        user_id -> Nullable<BigInt>,
        run_id -> Nullable<BigInt>,
        member_slug -> Text,
        name_at_issue -> Text,
        course_title -> Text,
        member_name -> Text,
        run_key -> Text,
        grade_percent -> Double,
        issued_at -> Timestamp,
        status_index -> BigInt,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
        revoked_by -> Nullable<BigInt>,
    }
}

diesel::table! {
    proctoring_sessions (id) {
        id -> BigInt,
        enrollment_id -> BigInt,
        block_id -> BigInt,
        provider_ref -> Text,
        launch_url -> Text,
        status -> Text,
        outcome -> Nullable<Text>,
        created_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(payments, users);
diesel::allow_tables_to_appear_in_same_query!(payments, course_runs);
diesel::allow_tables_to_appear_in_same_query!(payments, courses);
diesel::allow_tables_to_appear_in_same_query!(payments, members);
diesel::allow_tables_to_appear_in_same_query!(identity_checks, users);
diesel::allow_tables_to_appear_in_same_query!(identity_checks, course_runs);
diesel::allow_tables_to_appear_in_same_query!(identity_checks, courses);
diesel::allow_tables_to_appear_in_same_query!(identity_checks, members);
diesel::allow_tables_to_appear_in_same_query!(assistance_applications, users);
diesel::allow_tables_to_appear_in_same_query!(assistance_applications, course_runs);
diesel::allow_tables_to_appear_in_same_query!(assistance_applications, courses);
diesel::allow_tables_to_appear_in_same_query!(assistance_applications, members);
diesel::allow_tables_to_appear_in_same_query!(certificates, users);
diesel::allow_tables_to_appear_in_same_query!(certificates, course_runs);
diesel::allow_tables_to_appear_in_same_query!(certificates, courses);
diesel::allow_tables_to_appear_in_same_query!(certificates, members);
diesel::allow_tables_to_appear_in_same_query!(proctoring_sessions, enrollments);
diesel::joinable!(identity_checks -> users (user_id));
diesel::joinable!(payments -> users (user_id));
diesel::joinable!(payments -> course_runs (run_id));
diesel::joinable!(assistance_applications -> users (user_id));
diesel::joinable!(assistance_applications -> course_runs (run_id));
diesel::joinable!(certificates -> course_runs (run_id));

diesel::table! {
    totp_credentials (user_id) {
        user_id -> BigInt,
        secret -> Text,
        confirmed_at -> Nullable<Timestamp>,
        last_step -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    security_events (id) {
        id -> BigInt,
        user_id -> BigInt,
        kind -> Text,
        detail -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sms_numbers (user_id) {
        user_id -> BigInt,
        phone -> Text,
        phone_hash -> Text,
        consent_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        stopped_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sms_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        code_hash -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sms_outbox (id) {
        id -> BigInt,
        phone -> Text,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    oidc_links (id) {
        id -> BigInt,
        user_id -> BigInt,
        provider -> Text,
        subject -> Text,
        email -> Nullable<Text>,
        access_token -> Nullable<Text>,
        refresh_token -> Nullable<Text>,
        confirmed_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    oidc_pending (state_hash) {
        state_hash -> Text,
        provider -> Text,
        nonce -> Text,
        pkce_verifier -> Text,
        purpose -> Text,
        user_id -> Nullable<BigInt>,
        remember -> Bool,
        next -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    org_staff (id) {
        id -> Text,
        partner_id -> BigInt,
        user_id -> BigInt,
        user_name -> Text,
        user_name_key -> Text,
        external_id -> Nullable<Text>,
        given_name -> Nullable<Text>,
        family_name -> Nullable<Text>,
        display_name -> Nullable<Text>,
        title -> Nullable<Text>,
        department -> Nullable<Text>,
        work_email -> Text,
        active -> Bool,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        provisioned -> Bool,
    }
}

diesel::table! {
    org_groups (id) {
        id -> Text,
        partner_id -> BigInt,
        display_name -> Text,
        external_id -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    org_group_members (group_id, staff_id) {
        group_id -> Text,
        staff_id -> Text,
    }
}

diesel::joinable!(org_group_members -> org_staff (staff_id));
diesel::joinable!(org_group_members -> org_groups (group_id));
diesel::allow_tables_to_appear_in_same_query!(org_staff, org_groups, org_group_members);
diesel::allow_tables_to_appear_in_same_query!(org_staff, enrollments);
diesel::allow_tables_to_appear_in_same_query!(org_staff, course_runs);
diesel::allow_tables_to_appear_in_same_query!(org_staff, courses);
diesel::allow_tables_to_appear_in_same_query!(org_staff, members);
diesel::allow_tables_to_appear_in_same_query!(org_staff, users);
diesel::allow_tables_to_appear_in_same_query!(org_staff, partners);

diesel::table! {
    org_assignments (id) {
        id -> BigInt,
        partner_id -> BigInt,
        staff_id -> Text,
        run_id -> BigInt,
        due_on -> Date,
        assigned_by -> Nullable<BigInt>,
        reminded_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(org_assignments -> org_staff (staff_id));
diesel::joinable!(org_assignments -> course_runs (run_id));
diesel::allow_tables_to_appear_in_same_query!(org_assignments, org_staff);
diesel::allow_tables_to_appear_in_same_query!(org_assignments, course_runs);
diesel::allow_tables_to_appear_in_same_query!(org_assignments, courses);
diesel::allow_tables_to_appear_in_same_query!(org_assignments, users);
diesel::allow_tables_to_appear_in_same_query!(org_assignments, enrollments);
diesel::allow_tables_to_appear_in_same_query!(org_assignments, partners);
diesel::joinable!(org_staff -> users (user_id));

diesel::table! {
    org_invitations (id) {
        id -> BigInt,
        partner_id -> BigInt,
        email -> Text,
        token_hash -> Text,
        invited_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        accepted_at -> Nullable<Timestamp>,
        accepted_by -> Nullable<BigInt>,
    }
}

diesel::table! {
    exam_sessions (id) {
        id -> BigInt,
        partner_id -> BigInt,
        course_id -> BigInt,
        title -> Text,
        starts_at -> Timestamp,
        time_zone -> Text,
        mode -> Text,
        location -> Text,
        capacity -> Integer,
        booked -> Integer,
        booking_deadline -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    exam_bookings (id) {
        id -> BigInt,
        session_id -> BigInt,
        user_id -> BigInt,
        reference -> Text,
        status -> Text,
        created_at -> Timestamp,
        cancelled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    exam_results (id) {
        id -> BigInt,
        booking_id -> BigInt,
        user_id -> BigInt,
        grade -> Text,
        score -> Nullable<Double>,
        passed -> Bool,
        source -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    support_needs (user_id) {
        user_id -> BigInt,
        needs -> Text,
        adjustments -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    malpractice_cases (id) {
        id -> BigInt,
        booking_id -> BigInt,
        opened_by -> Nullable<BigInt>,
        details -> Text,
        status -> Text,
        outcome -> Nullable<Text>,
        disclosure_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        closed_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(exam_sessions -> partners (partner_id));
diesel::joinable!(exam_sessions -> courses (course_id));
diesel::joinable!(exam_bookings -> exam_sessions (session_id));
diesel::joinable!(exam_bookings -> users (user_id));
diesel::joinable!(exam_results -> exam_bookings (booking_id));
diesel::joinable!(malpractice_cases -> exam_bookings (booking_id));
diesel::allow_tables_to_appear_in_same_query!(
    exam_sessions,
    exam_bookings,
    exam_results,
    malpractice_cases,
    support_needs
);
diesel::allow_tables_to_appear_in_same_query!(exam_sessions, partners);
diesel::allow_tables_to_appear_in_same_query!(exam_sessions, courses);
diesel::allow_tables_to_appear_in_same_query!(exam_sessions, users);
diesel::allow_tables_to_appear_in_same_query!(exam_sessions, sponsorships);
diesel::allow_tables_to_appear_in_same_query!(exam_sessions, course_runs);
diesel::allow_tables_to_appear_in_same_query!(exam_bookings, users);
diesel::allow_tables_to_appear_in_same_query!(exam_bookings, partners);
diesel::allow_tables_to_appear_in_same_query!(exam_bookings, courses);
diesel::allow_tables_to_appear_in_same_query!(exam_bookings, sponsorships);
diesel::allow_tables_to_appear_in_same_query!(exam_bookings, course_runs);
diesel::allow_tables_to_appear_in_same_query!(exam_results, users);
diesel::allow_tables_to_appear_in_same_query!(exam_results, partners);
diesel::allow_tables_to_appear_in_same_query!(exam_results, courses);
diesel::allow_tables_to_appear_in_same_query!(exam_results, sponsorships);
diesel::allow_tables_to_appear_in_same_query!(exam_results, course_runs);
diesel::allow_tables_to_appear_in_same_query!(malpractice_cases, users);
diesel::allow_tables_to_appear_in_same_query!(malpractice_cases, partners);
diesel::allow_tables_to_appear_in_same_query!(malpractice_cases, courses);
diesel::allow_tables_to_appear_in_same_query!(exam_sessions, enrollments);
diesel::allow_tables_to_appear_in_same_query!(support_needs, users);

// Attempts per action, keyed hash and minute, shared by every instance.
diesel::table! {
    rate_windows (action, key_hash, minute) {
        action -> Text,
        key_hash -> BigInt,
        minute -> BigInt,
        hits -> Integer,
    }
}
