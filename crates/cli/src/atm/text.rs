//! What the ATM says, in Portuguese (the default) and English. Kept apart from the flow so a
//! sentence can be fixed without reading the logic, and both languages stay complete: a
//! language is one value of [`Texts`], so a missing sentence does not compile.

use crate::amount::Lang;

pub struct Texts {
    pub title: &'static str,
    pub ctrl_c_hint: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub wrong_login: &'static str,
    pub too_many_logins: &'static str,
    pub welcome: &'static str,
    pub no_accounts: &'static str,
    pub choose_account: &'static str,
    pub account: &'static str,
    pub option: &'static str,
    pub invalid_option: &'static str,
    /// After an answer to a yes/no question that is neither.
    pub answer_yes_no: &'static str,
    /// After an answer to "retry or quit" that is neither.
    pub answer_retry: &'static str,
    /// After a letter that is no package operation.
    pub package_invalid: &'static str,
    pub menu: [&'static str; 7],
    pub balance: &'static str,
    pub available: &'static str,
    pub statement_of: &'static str,
    /// The statement's columns other than the balance: date, kind, amount, details.
    pub statement_columns: [&'static str; 4],
    pub no_entries: &'static str,
    pub older: &'static str,
    pub amount: &'static str,
    pub invalid_amount: &'static str,
    pub cancelled: &'static str,
    pub deposit_done: &'static str,
    pub withdrawal_done: &'static str,
    pub new_balance: &'static str,
    pub destination: &'static str,
    pub payee: &'static str,
    pub payee_account: &'static str,
    pub description: &'static str,
    pub confirm: &'static str,
    pub yes_no: &'static str,
    pub transfer_done: &'static str,
    pub transfer_not_done: &'static str,
    pub package_operation: &'static str,
    pub package_letters: PackageLetters,
    pub package_empty: &'static str,
    pub package_summary: &'static str,
    pub package_done: &'static str,
    pub package_not_done: &'static str,
    pub operation_names: [&'static str; 3],
    pub refused: &'static str,
    pub connection_lost: &'static str,
    pub retry_or_quit: &'static str,
    pub session_closed: &'static str,
    pub goodbye: &'static str,
    pub clock: &'static str,
    pub id: &'static str,
}

/// The letters that pick a package operation.
pub struct PackageLetters {
    pub deposit: &'static str,
    pub withdrawal: &'static str,
    pub transfer: &'static str,
    pub finish: &'static str,
}

pub const PT: Texts = Texts {
    title: "Caixa Eletrônico",
    ctrl_c_hint: "(Ctrl-C encerra a sessão a qualquer momento.)",
    username: "Usuário: ",
    password: "Senha: ",
    wrong_login: "Usuário ou senha incorretos.",
    too_many_logins: "Muitas tentativas sem sucesso.",
    welcome: "Bem-vindo(a),",
    no_accounts: "Você não tem conta neste banco. Abra uma com `bank open`.",
    choose_account: "Escolha a conta:",
    account: "Conta",
    option: "Opção: ",
    invalid_option: "Opção inválida; digite um dos números da lista.",
    answer_yes_no: "Resposta inválida; digite s (sim) ou n (não).",
    answer_retry: "Resposta inválida; digite t (tentar de novo) ou s (sair).",
    package_invalid: "Operação inválida; digite d, s, t ou f.",
    menu: [
        "1) Saldo",
        "2) Extrato",
        "3) Depósito",
        "4) Saque",
        "5) Transferência / Pix",
        "6) Pacote de operações",
        "0) Sair",
    ],
    balance: "Saldo",
    available: "Disponível",
    statement_of: "Extrato da conta",
    statement_columns: ["data", "lançamento", "valor", "detalhes"],
    no_entries: "Nenhum lançamento.",
    older: "Ver lançamentos mais antigos?",
    amount: "Valor (vazio cancela): ",
    invalid_amount: "Valor inválido:",
    cancelled: "Cancelado.",
    deposit_done: "Depósito realizado.",
    withdrawal_done: "Saque realizado. Retire o dinheiro.",
    new_balance: "Novo saldo:",
    destination: "Chave Pix ou conta destino (banco/número; vazio cancela): ",
    payee: "Favorecido:",
    payee_account: "Conta destino:",
    description: "Descrição (opcional): ",
    confirm: "Confirmar",
    yes_no: "(s/n): ",
    transfer_done: "Transferência concluída.",
    transfer_not_done: "Transferência não realizada:",
    package_operation: "Operação (d = depósito, s = saque, t = transferência, f = fim; vazio cancela): ",
    package_letters: PackageLetters {
        deposit: "d",
        withdrawal: "s",
        transfer: "t",
        finish: "f",
    },
    package_empty: "O pacote está vazio.",
    package_summary: "Operações do pacote:",
    package_done: "Pacote concluído: todas as operações foram feitas.",
    package_not_done: "Pacote não realizado (nenhuma operação foi feita):",
    operation_names: ["depósito", "saque", "transferência"],
    refused: "Recusado pelo banco:",
    connection_lost: "Sem conexão com o banco.",
    retry_or_quit: "(t) tentar de novo ou (s) sair: ",
    session_closed: "Sessão encerrada.",
    goodbye: "Até logo!",
    clock: "relógio do banco",
    id: "Identificador:",
};

pub const EN: Texts = Texts {
    title: "ATM",
    ctrl_c_hint: "(Ctrl-C ends the session at any time.)",
    username: "Username: ",
    password: "Password: ",
    wrong_login: "Wrong username or password.",
    too_many_logins: "Too many failed attempts.",
    welcome: "Welcome,",
    no_accounts: "You hold no account at this bank. Open one with `bank open`.",
    choose_account: "Choose the account:",
    account: "Account",
    option: "Option: ",
    invalid_option: "Invalid option; type one of the listed numbers.",
    answer_yes_no: "Invalid answer; type y (yes) or n (no).",
    answer_retry: "Invalid answer; type r (retry) or q (quit).",
    package_invalid: "Invalid operation; type d, w, t or f.",
    menu: [
        "1) Balance",
        "2) Statement",
        "3) Deposit",
        "4) Withdrawal",
        "5) Transfer / Pix",
        "6) Package of operations",
        "0) Exit",
    ],
    balance: "Balance",
    available: "Available",
    statement_of: "Statement of account",
    statement_columns: ["date", "entry", "amount", "details"],
    no_entries: "No entries.",
    older: "See older entries?",
    amount: "Amount (empty cancels): ",
    invalid_amount: "Invalid amount:",
    cancelled: "Cancelled.",
    deposit_done: "Deposit made.",
    withdrawal_done: "Withdrawal made. Take your cash.",
    new_balance: "New balance:",
    destination: "Pix key or destination account (bank/number; empty cancels): ",
    payee: "Payee:",
    payee_account: "Destination account:",
    description: "Description (optional): ",
    confirm: "Confirm",
    yes_no: "(y/n): ",
    transfer_done: "Transfer completed.",
    transfer_not_done: "Transfer not made:",
    package_operation: "Operation (d = deposit, w = withdrawal, t = transfer, f = finish; empty cancels): ",
    package_letters: PackageLetters {
        deposit: "d",
        withdrawal: "w",
        transfer: "t",
        finish: "f",
    },
    package_empty: "The package is empty.",
    package_summary: "Operations in the package:",
    package_done: "Package completed: every operation was made.",
    package_not_done: "Package not made (no operation was made):",
    operation_names: ["deposit", "withdrawal", "transfer"],
    refused: "Refused by the bank:",
    connection_lost: "Lost the connection to the bank.",
    retry_or_quit: "(r) retry or (q) quit: ",
    session_closed: "Session closed.",
    goodbye: "Goodbye!",
    clock: "bank clock",
    id: "Id:",
};

pub fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::Pt => &PT,
        Lang::En => &EN,
    }
}

/// A refusal's code in words, where the bank's own English detail would not do.
pub fn refusal(lang: Lang, code: &str) -> Option<&'static str> {
    let text = match (lang, code) {
        (Lang::Pt, "insufficient_funds") => "saldo insuficiente",
        (Lang::Pt, "pix_key_not_found") => "chave Pix não encontrada",
        (Lang::Pt, "account_not_found") => "conta não encontrada",
        (Lang::Pt, "same_account") => "origem e destino são a mesma conta",
        (Lang::Pt, "amount_too_large") => "valor acima do limite",
        (Lang::Pt, "invalid_pix_key") => "chave Pix inválida",
        (Lang::Pt, "invalid_destination") => "destino inválido",
        (Lang::Pt, "invalid_bank") => "código de banco inválido",
        (Lang::Pt, "invalid_account_number") => "número de conta inválido",
        (Lang::Pt, "unknown_bank") => "banco fora do consórcio",
        (Lang::Pt, "interbank_not_supported") => "pagamentos entre bancos ainda não estão abertos",
        (Lang::Pt, "invalid_description") => "descrição longa demais ou com caracteres de controle",
        (Lang::Pt, "too_many_login_attempts") => "muitas tentativas; espere um pouco",
        (Lang::Pt, "unauthenticated") => "sessão expirada; entre de novo",
        (Lang::En, "insufficient_funds") => "insufficient funds",
        (Lang::En, "pix_key_not_found") => "no such Pix key",
        (Lang::En, "interbank_not_supported") => "payments between banks are not open yet",
        _ => return None,
    };
    Some(text)
}

/// Whether an answer means yes (`Some(true)`), no, or neither; both languages are understood.
pub fn yes(answer: &str) -> Option<bool> {
    match answer.to_lowercase().as_str() {
        "s" | "sim" | "y" | "yes" => Some(true),
        "n" | "não" | "nao" | "no" => Some(false),
        _ => None,
    }
}

/// Whether an answer to "retry or quit" means retry.
pub fn retry(answer: &str) -> Option<bool> {
    match answer.to_lowercase().as_str() {
        "t" | "tentar" | "r" | "retry" => Some(true),
        "s" | "sair" | "q" | "quit" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        for (answer, expected) in [
            ("s", Some(true)),
            ("SIM", Some(true)),
            ("y", Some(true)),
            ("n", Some(false)),
            ("não", Some(false)),
            ("talvez", None),
            ("", None),
        ] {
            assert_eq!(yes(answer), expected, "{answer}");
        }
        for (answer, expected) in [
            ("t", Some(true)),
            ("r", Some(true)),
            ("s", Some(false)),
            ("q", Some(false)),
            ("x", None),
        ] {
            assert_eq!(retry(answer), expected, "{answer}");
        }
    }

    #[test]
    fn both_languages_have_a_menu_of_seven() {
        for texts in [&PT, &EN] {
            assert_eq!(texts.menu.len(), 7);
            assert!(texts.menu[6].starts_with("0)"));
        }
        assert_eq!(
            refusal(Lang::Pt, "insufficient_funds"),
            Some("saldo insuficiente")
        );
        assert_eq!(refusal(Lang::Pt, "something_new"), None);
    }
}
