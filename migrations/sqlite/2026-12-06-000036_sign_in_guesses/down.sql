DROP TABLE sign_in_guesses;
