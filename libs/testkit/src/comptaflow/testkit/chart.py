"""Reference data of a small French company: chart of accounts, journals, third parties."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Account:
    code: str
    label: str
    account_type: str


@dataclass(frozen=True, slots=True)
class Journal:
    code: str
    label: str
    journal_type: str


@dataclass(frozen=True, slots=True)
class Tiers:
    code: str
    name: str
    collectif: str
    tiers_type: str
    siret: str
    address: str
    postal_code: str
    city: str
    country: str
    email: str
    phone: str


ACCOUNTS: tuple[Account, ...] = (
    Account("080100", "Engagements donnés (hors bilan)", "Hors bilan"),
    Account("101000", "Capital social", "Bilan"),
    Account("164000", "Emprunts auprès des établissements de crédit", "Bilan"),
    Account("401000", "Fournisseurs", "Bilan"),
    Account("411000", "Clients", "Bilan"),
    Account("421000", "Personnel - rémunérations dues", "Bilan"),
    Account("445660", "TVA déductible sur ABS", "Bilan"),
    Account("445710", "TVA collectée", "Bilan"),
    Account("512000", "Banque", "Bilan"),
    Account("530000", "Caisse", "Bilan"),
    Account("601000", "Achats de matières premières", "Charge"),
    Account("606300", "Fournitures d'entretien et petit équipement", "Charge"),
    Account("613200", "Locations immobilières", "Charge"),
    Account("626000", "Frais postaux et de télécommunications", "Charge"),
    Account("641000", "Rémunérations du personnel", "Charge"),
    Account("706000", "Prestations de services", "Produit"),
    Account("707000", "Ventes de marchandises", "Produit"),
)

ACCOUNT_BY_CODE: dict[str, Account] = {account.code: account for account in ACCOUNTS}

JOURNALS: tuple[Journal, ...] = (
    Journal("AC", "Achats", "Achats"),
    Journal("VT", "Ventes", "Ventes"),
    Journal("BQ", "Banque BNP", "Banque"),
    Journal("CA", "Caisse", "Caisse"),
    Journal("OD", "Opérations diverses", "Opérations diverses"),
    Journal("AN", "A-nouveaux", "A-nouveaux"),
)

TIERS: tuple[Tiers, ...] = (
    Tiers(
        "0DUPONT",
        "Dupont & Fils SARL",
        "411000",
        "Client",
        "73282932000074",
        "12 rue de la Paix",
        "75002",
        "Paris",
        "France",
        "compta@dupont.example",
        "01 42 00 00 01",
    ),
    Tiers(
        "C0001",
        "Boulangerie Léa",
        "411000",
        "Client",
        "44306184100047",
        "3 place du Marché",
        "69001",
        "Lyon",
        "France",
        "lea@boulangerie.example",
        "04 78 00 00 02",
    ),
    Tiers(
        "C0002",
        "Éditions Hélios",
        "411000",
        "Client",
        "55210055400013",
        "8 avenue Foch",
        "13008",
        "Marseille",
        "France",
        "contact@helios.example",
        "04 91 00 00 03",
    ),
    Tiers(
        "FABC01",
        "ABC Fournitures",
        "401000",
        "Fournisseur",
        "38012986600029",
        "ZI des Granges",
        "38100",
        "Grenoble",
        "France",
        "factures@abc.example",
        "04 76 00 00 04",
    ),
    Tiers(
        "FORANGE",
        "Orange Business",
        "401000",
        "Fournisseur",
        "38012986646850",
        "78 rue Olivier de Serres",
        "75015",
        "Paris",
        "France",
        "pro@orange.example",
        "39 00",
    ),
    Tiers(
        "F0042",
        "SCI du Parc",
        "401000",
        "Fournisseur",
        "81234567800011",
        "1 allée des Tilleuls",
        "33000",
        "Bordeaux",
        "France",
        "sci.parc@example.org",
        "05 56 00 00 05",
    ),
    Tiers(
        "S0007",
        "Martin Julie",
        "421000",
        "Salarié",
        "",
        "5 impasse des Lilas",
        "44000",
        "Nantes",
        "France",
        "julie.martin@example.org",
        "06 00 00 00 07",
    ),
)

TIERS_BY_CODE: dict[str, Tiers] = {tiers.code: tiers for tiers in TIERS}
