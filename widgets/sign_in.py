"""The sign-in dialog: who is at this console.

It only asks: ``submitted(user, password)`` goes to the window, which sends
the engine a ``SignIn`` and shows the answer here (``show_error``) or closes
the dialog. The password field is cleared after every attempt, and nothing
here remembers it.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)


class SignInDialog(QDialog):
    submitted = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("signInDialog")
        self.setWindowTitle(self.tr("Sign in — Child Safety Control Console"))
        self.setModal(True)
        title = QLabel(self.tr("Sign in to work alerts"))
        title.setObjectName("panelTitle")
        self.user = QLineEdit()
        self.user.setObjectName("signInUser")
        self.user.setPlaceholderText(self.tr("user name"))
        self.password = QLineEdit()
        self.password.setObjectName("signInPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = QLabel("")
        self.message.setObjectName("signInMessage")
        self.message.setWordWrap(True)
        form = QFormLayout()
        form.addRow(self.tr("User"), self.user)
        form.addRow(self.tr("Password"), self.password)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(self.tr("Sign in"))
        self.buttons.accepted.connect(self._submit)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(380)

    def ask(self, user: str = "", message: str = "") -> None:
        """Show the dialog for a (new) sign-in, with a reason if there is one."""
        self.user.setText(user)
        self.password.clear()
        self._say(message, error=False)
        self.buttons.setEnabled(True)
        self.show()
        self.raise_()
        (self.password if user else self.user).setFocus(Qt.FocusReason.OtherFocusReason)

    def _submit(self) -> None:
        user = self.user.text().strip()
        password = self.password.text()
        self.password.clear()
        if not user or not password:
            self._say(self.tr("Give a user name and a password."), error=True)
            return
        self.buttons.setEnabled(False)
        self._say(self.tr("Signing in…"), error=False)
        self.submitted.emit(user, password)

    def show_error(self, text: str) -> None:
        self.buttons.setEnabled(True)
        self._say(text, error=True)
        self.password.setFocus(Qt.FocusReason.OtherFocusReason)

    def _say(self, text: str, *, error: bool) -> None:
        self.message.setText(text)
        self.message.setProperty("error", error)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)

    def reject(self) -> None:
        """Escape does not dismiss it: the console is unusable signed out."""


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    dialog = SignInDialog()
    dialog.submitted.connect(lambda u, _p: dialog.show_error(f"{u}: wrong user name or password"))
    dialog.ask()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
